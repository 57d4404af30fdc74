"""The CDK construct's synthesized template (infra/cdk/uc-pipeline.template.json), deployed to a
moto server with `dev/local_stack.py deploy --cfn-template` (no SAM translation).

A moto server is started on a free 127.0.0.1 port and stopped by the fixture's finalizer. The
tests check that the stack comes up with the same output keys as the SAM local stack, that the
bus, rule (with its target's DLQ and retry policy), queues, DLQs, archive and roles exist with the
right settings, that an event on the bus reaches the queue, that the archive keeps UserDeleted
events as well as UserConfirmed, that a CloudTrail-shaped Cognito event
on the default bus reaches the lifecycle queue, that moto creates the dashboard, and
that a SAM stack deployed next to it reads back the same settings (dashboard included). A second stack deploys the functions (placeholder zips) to
check their configuration, event source mapping and permission.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "cdk" / "uc-pipeline.template.json"
LOCAL_STACK = ROOT / "dev" / "local_stack.py"
SCHEMA_FILE = ROOT / "schemas" / "json" / "user-confirmed.v1.schema.json"

# The SAM local stack's output keys (dev/tests/test_template.py), in the same order: the
# end-to-end suite can run on either stack.
LOCAL_OUTPUT_KEYS = [
    "EventBusName", "EventBusArn", "EventSource", "RuleArn", "ArchiveName", "ArchiveArn",
    "QueueUrl", "QueueArn", "WorkerDlqUrl", "WorkerDlqArn", "RuleDlqUrl",
    "LifecycleQueueUrl", "LifecycleQueueArn", "LifecycleRuleArn", "EmitterRoleArn",
    "WorkerRoleArn", "ReconcilerRoleArn", "ReconcileWatermarkParameter", "AuditorPolicyArn", "UserPoolId",
    "UserPoolClientId",
]
# Types moto's CloudFormation does not implement (infra/README.md, moto gaps): the same as for
# the SAM template, by the construct's names for those resources.
MOTO_SKIPS = {
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignSource",
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignDetailType",
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignProfileCreated",
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignProfileDeleted",
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignUserDeleted",
    "AWS::SQS::QueuePolicy WorkerQueuePolicy",
    "AWS::SQS::QueuePolicy RuleDeadLetterQueuePolicy",
    "AWS::SQS::QueuePolicy WorkerDeadLetterQueuePolicy",
    "AWS::SQS::QueuePolicy LifecycleQueuePolicy",
    "AWS::CloudWatch::Alarm WorkerDeadLetterQueueAlarm",
    "AWS::CloudWatch::Alarm RuleDeadLetterQueueAlarm",
    "AWS::CloudWatch::Alarm WorkerQueueAgeAlarm",
    "AWS::CloudWatch::Alarm LifecycleQueueAgeAlarm",
    "AWS::CloudWatch::Alarm EmitterPublishFailedAlarm",
    "AWS::CloudWatch::Alarm EmitterFallbackAlarm",
    "AWS::CloudWatch::Alarm WorkerPermanentFailuresAlarm",
    "AWS::CloudWatch::Alarm ReconcilerBehindAlarm",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "dev" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def local_stack(*args: str) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, str(LOCAL_STACK), *args], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0]), result.stderr


def deploy(moto: str, name: str, *extra: str) -> tuple[dict, str]:
    return local_stack("deploy", "--endpoint", moto, "--stack-name", name, "--cfn-template", str(TEMPLATE), *extra)


def aws(service: str, endpoint: str):
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def role_policy(iam, role_arn: str) -> dict:
    """The role's inline policies as one document (the reconciler's role has two: its own and
    reconciler-store-read, the store check, put on it from the worker's side)."""
    name = role_arn.rsplit("/", 1)[-1]
    statements = []
    for policy_name in sorted(iam.list_role_policies(RoleName=name)["PolicyNames"]):
        document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        document = ast.literal_eval(document) if isinstance(document, str) else document  # moto: a repr
        statements += document["Statement"]
    return {"Version": "2012-10-17", "Statement": statements}


def auditor_policy(iam, arn: str) -> dict:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def canonical_name(logical_id: str) -> str:
    return re.fullmatch(r"Pipeline(\w+?)[0-9A-F]{8}", logical_id).group(1)


@pytest.fixture(scope="module")
def stack(moto):
    return deploy(moto, "uc-cdk")


def test_outputs_are_the_sam_local_stacks(stack, moto):
    outputs, stderr = stack
    assert list(outputs) == LOCAL_OUTPUT_KEYS
    assert outputs["EventBusName"] == "uc-cdk-events"
    assert outputs["ArchiveName"] == "uc-cdk-user-confirmed"
    for key in ("QueueUrl", "WorkerDlqUrl", "RuleDlqUrl", "LifecycleQueueUrl"):
        assert outputs[key].startswith(moto + "/"), outputs[key]
    skipped = re.search(r"^moto skipped: (.*)$", stderr, re.M).group(1).split(", ")
    assert {f"{t} {canonical_name(i)}" for t, i in (s.split(" ") for s in skipped)} == MOTO_SKIPS
    # As for SAM's DeployFunctions=false / CreateSchemaRegistry=false: dropped with what refers to them.
    dropped = dict(re.findall(r"^(\w+)=false: dropped (.*)$", stderr, re.M))
    assert {canonical_name(i) for i in dropped["DeployFunctions"].split(", ")} == {
        "EmitterFunction", "WorkerFunction", "WorkerFunctionWorkerQueue", "WorkerFunctionLifecycleQueue",
        "EmitterInvokeFromUserPool", "EmitterErrorsAlarm",
        "ReconcilerFunction", "ReconcilerInvokeConfig", "ReconcilerSchedulerRole", "ReconcilerSchedule",
        "ReconcilerOrphanSweepSchedule", "ReconcilerFailedAlarm"}
    assert {canonical_name(i) for i in dropped["CreateSchemaRegistry"].split(", ")} == {
        "SchemaRegistry", "UserConfirmedSchema", "ProfileCreatedSchema", "UserDeletedSchema", "ProfileDeletedSchema"}


def test_bus_rule_queues_archive_and_roles(stack, moto):
    outputs, _ = stack
    events, sqs, iam = aws("events", moto), aws("sqs", moto), aws("iam", moto)
    assert events.describe_event_bus(Name=outputs["EventBusName"])["Arn"] == outputs["EventBusArn"]

    rule, = [r for r in events.list_rules(EventBusName=outputs["EventBusName"])["Rules"] if r["Arn"] == outputs["RuleArn"]]
    assert json.loads(rule["EventPattern"]) == {"source": ["userconfirmed.cognito"], "detail-type": ["UserConfirmed"]}
    assert rule["State"] == "ENABLED"
    target, = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=outputs["EventBusName"])["Targets"]
    rule_dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["RuleDlqUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert (target["Id"], target["Arn"]) == ("worker-queue", outputs["QueueArn"])
    assert target["DeadLetterConfig"] == {"Arn": rule_dlq_arn}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}

    queue = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert json.loads(queue["RedrivePolicy"]) == {"deadLetterTargetArn": outputs["WorkerDlqArn"], "maxReceiveCount": 5}
    assert (queue["VisibilityTimeout"], queue["MessageRetentionPeriod"], queue["ReceiveMessageWaitTimeSeconds"]) == (
        "180", "345600", "20")
    assert queue["SqsManagedSseEnabled"] == "true"
    for url in (outputs["WorkerDlqUrl"], outputs["RuleDlqUrl"]):
        dlq = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (dlq["MessageRetentionPeriod"], dlq["SqsManagedSseEnabled"]) == ("1209600", "true")
        assert "RedrivePolicy" not in dlq
    # The lifecycle queue: the worker queue's settings, the same worker DLQ.
    lifecycle = sqs.get_queue_attributes(QueueUrl=outputs["LifecycleQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert json.loads(lifecycle["RedrivePolicy"]) == {"deadLetterTargetArn": outputs["WorkerDlqArn"], "maxReceiveCount": 5}
    assert (lifecycle["QueueArn"], lifecycle["VisibilityTimeout"], lifecycle["MessageRetentionPeriod"],
            lifecycle["SqsManagedSseEnabled"]) == (outputs["LifecycleQueueArn"], "180", "345600", "true")

    archive = events.describe_archive(ArchiveName=outputs["ArchiveName"])
    assert (archive["EventSourceArn"], archive["RetentionDays"]) == (outputs["EventBusArn"], 365)
    assert json.loads(archive["EventPattern"]) == {
        "source": ["userconfirmed.cognito"], "detail-type": ["UserConfirmed", "UserDeleted"]}

    emitter = {s["Sid"]: s for s in role_policy(iam, outputs["EmitterRoleArn"])["Statement"]}
    assert emitter["PublishUserConfirmed"]["Resource"] == outputs["EventBusArn"]
    assert emitter["PublishUserConfirmed"]["Condition"] == {
        "StringEquals": {"events:source": "userconfirmed.cognito", "events:detail-type": "UserConfirmed"}}
    assert emitter["FallbackToWorkerQueue"]["Resource"] == outputs["QueueArn"]
    worker = {s["Sid"]: s for s in role_policy(iam, outputs["WorkerRoleArn"])["Statement"]}
    assert worker["CreateUserProfileOnly"]["Resource"] == (
        "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Mutation/fields/createUserProfile")
    assert worker["ResolveGraphqlEndpoint"]["Resource"] == "arn:aws:appsync:us-east-1:123456789012:apis/local"
    assert worker["ConsumeWorkerQueue"]["Resource"] == outputs["QueueArn"]
    assert worker["DeadLetterPermanentFailures"]["Resource"] == outputs["WorkerDlqArn"]
    assert "CheckUsersInThePool" not in worker  # strict mode (verifyUser) is off in this template
    assert worker["AnnounceProfiles"]["Resource"] == outputs["EventBusArn"]  # publishProfileCreated: true
    assert worker["AnnounceProfiles"]["Condition"] == {
        "StringEquals": {"events:detail-type": "ProfileCreated", "events:source": "userconfirmed.cognito"}}
    # lifecycleEvents (the default): the lifecycle queue, ListUsers on the pool, the profile read and
    # delete, the lifecycle's events.
    assert worker["ConsumeLifecycleQueue"]["Resource"] == outputs["LifecycleQueueArn"]
    assert worker["LookUpUsersInThePool"]["Resource"] == f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{outputs['UserPoolId']}"
    assert sorted(worker["ReadAndDeleteUserProfilesOnly"]["Resource"]) == [
        "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Mutation/fields/deleteUserProfile",
        "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Query/fields/getUserProfile"]
    assert worker["PublishLifecycleEvents"]["Resource"] == outputs["EventBusArn"]
    reconciler = {s["Sid"]: s for s in role_policy(iam, outputs["ReconcilerRoleArn"])["Statement"]}
    assert reconciler["PublishUserConfirmed"]["Resource"] == outputs["EventBusArn"]
    assert reconciler["ListPoolUsers"]["Resource"] == f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{outputs['UserPoolId']}"
    assert reconciler["KeepReconcileState"]["Resource"] == "arn:aws:ssm:us-east-1:123456789012:parameter/uc-cdk/reconciler/state"
    assert reconciler["ReadProfilesOnly"]["Action"] == "appsync:GraphQL"
    assert reconciler["ReadProfilesOnly"]["Resource"].endswith("/types/Query/fields/getUserProfile")
    assert reconciler["DeleteUserProfilesOnly"]["Resource"].endswith("/types/Mutation/fields/deleteUserProfile")
    assert reconciler["AnnounceDeletedUsers"]["Condition"] == {
        "StringEquals": {"events:source": "userconfirmed.cognito", "events:detail-type": "UserDeleted"}}
    assert outputs["ReconcileWatermarkParameter"] == "/uc-cdk/reconciler/state"
    assert aws("ssm", moto).get_parameter(Name="/uc-cdk/reconciler/state")["Parameter"]["Value"] == "{}"
    assert [s["Sid"] for s in auditor_policy(iam, outputs["AuditorPolicyArn"])["Statement"]] == [
        "ListProfilesOnly", "ResolveGraphqlEndpoint", "ListUsers"]
    for arn in (outputs["EmitterRoleArn"], outputs["WorkerRoleArn"], outputs["ReconcilerRoleArn"]):
        role = iam.get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"]
        trust, = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []


def dashboard(moto: str, name: str) -> dict:
    return json.loads(aws("cloudwatch", moto).get_dashboard(DashboardName=name)["DashboardBody"])


def test_moto_creates_the_dashboard(stack, moto):
    outputs, _ = stack
    body = dashboard(moto, "uc-cdk")
    queues = {url.rsplit("/", 1)[-1] for url in (outputs["QueueUrl"], outputs["WorkerDlqUrl"], outputs["RuleDlqUrl"],
                                                  outputs["LifecycleQueueUrl"])}
    rows = [row for w in body["widgets"] for row in w["properties"].get("metrics", []) if isinstance(row[0], str)]
    assert rows
    for row in rows:
        assert ("Stack" in row and row[row.index("Stack") + 1] == "uc-cdk") or (row[2] == "QueueName" and row[3] in queues), row


def test_a_user_confirmed_event_reaches_the_worker_queue(stack, moto):
    import jsonschema

    outputs, _ = stack
    events, sqs = aws("events", moto), aws("sqs", moto)
    detail = json.loads((ROOT / "schemas" / "examples" / "detail.email-alias.json").read_text())
    entries = [
        {"EventBusName": outputs["EventBusName"], "Source": "someone.else", "DetailType": "UserConfirmed", "Detail": json.dumps(detail)},
        {"EventBusName": outputs["EventBusName"], "Source": "userconfirmed.cognito", "DetailType": "UserConfirmed", "Detail": json.dumps(detail)},
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    messages = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=outputs["QueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=outputs["QueueUrl"], ReceiptHandle=m["ReceiptHandle"])
        messages += got
        if messages and not got:
            break
    assert len(messages) == 1, messages
    envelope = json.loads(messages[0]["Body"])
    assert (envelope["source"], envelope["detail-type"]) == ("userconfirmed.cognito", "UserConfirmed")
    jsonschema.Draft4Validator(json.loads(SCHEMA_FILE.read_text())).validate(envelope["detail"])


def test_the_archive_keeps_user_deleted_events_too(stack, moto):
    """moto archives through a rule with the archive's pattern: a UserDeleted under the stack's
    source is kept (a consumer back-filled by a replay gets the deletions), the other lifecycle
    events and another source's UserDeleted are not."""
    outputs, _ = stack
    events = aws("events", moto)
    count = lambda: events.describe_archive(ArchiveName=outputs["ArchiveName"])["EventCount"]
    before = count()
    detail = {"schemaVersion": "1.0", "eventId": "6f1c1d0e-0000-5000-8000-000000000001",
              "sub": "0b3c8f1e-0000-4000-8000-000000000003", "deletedAt": "2026-01-01T00:00:00Z",
              "detectedBy": "cloudTrail", "profileDeleted": True}
    entry = lambda source, detail_type: {"EventBusName": outputs["EventBusName"], "Source": source,
                                         "DetailType": detail_type, "Detail": json.dumps(detail)}
    entries = [entry("userconfirmed.cognito", "UserDeleted"), entry("someone.else", "UserDeleted"),
               entry("userconfirmed.cognito", "ProfileDeleted"), entry("userconfirmed.cognito", "ProfileCreated")]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    deadline = time.monotonic() + 5
    while count() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # anything else that would wrongly be archived has had its chance
    assert count() == before + 1


def test_a_cognito_cloudtrail_event_on_the_default_bus_reaches_the_lifecycle_queue(stack, moto):
    outputs, _ = stack
    events, sqs = aws("events", moto), aws("sqs", moto)
    rule, = [r for r in events.list_rules(EventBusName="default")["Rules"] if r["Arn"] == outputs["LifecycleRuleArn"]]
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.cognito-idp"], "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["cognito-idp.amazonaws.com"],
                   "eventName": ["AdminDeleteUser", "DeleteUser", "AdminCreateUser", "AdminSetUserPassword"]}}
    target, = events.list_targets_by_rule(Rule=rule["Name"], EventBusName="default")["Targets"]
    rule_dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["RuleDlqUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert (target["Id"], target["Arn"], target["DeadLetterConfig"]) == (
        "lifecycle-queue", outputs["LifecycleQueueArn"], {"Arn": rule_dlq_arn})
    detail = {"eventVersion": "1.09", "eventSource": "cognito-idp.amazonaws.com", "eventName": "AdminDeleteUser",
              "awsRegion": "us-east-1", "eventType": "AwsApiCall",
              "requestParameters": {"userPoolId": outputs["UserPoolId"], "username": "HIDDEN_DUE_TO_SECURITY_REASONS"},
              "additionalEventData": {"sub": "0b3c8f1e-0000-4000-8000-000000000002"}}
    entries = [
        {"Source": "aws.cognito-idp", "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(detail)},
        {"Source": "aws.cognito-idp", "DetailType": "AWS API Call via CloudTrail",
         "Detail": json.dumps({**detail, "eventName": "InitiateAuth"})},
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    messages = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=outputs["LifecycleQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=outputs["LifecycleQueueUrl"], ReceiptHandle=m["ReceiptHandle"])
        messages += got
        if messages and not got:
            break
    assert len(messages) == 1, messages
    envelope = json.loads(messages[0]["Body"])
    assert (envelope["source"], envelope["detail-type"], envelope["detail"]) == (
        "aws.cognito-idp", "AWS API Call via CloudTrail", detail)


def test_reads_back_like_the_sam_stack(stack, moto):
    """The SAM template deployed next to it (its own prefix): the same queue attributes, rule,
    archive and role policies once the prefixes are set aside."""
    cdk, _ = stack
    sam, _ = local_stack("deploy", "--endpoint", moto, "--stack-name", "uc-sam")
    events, sqs, iam = aws("events", moto), aws("sqs", moto), aws("iam", moto)

    def settings(outputs: dict, prefix: str) -> dict:
        queues = {key: sqs.get_queue_attributes(QueueUrl=outputs[key], AttributeNames=["All"])["Attributes"]
                  for key in ("QueueUrl", "WorkerDlqUrl", "RuleDlqUrl", "LifecycleQueueUrl")}
        for attributes in queues.values():
            for volatile in ("CreatedTimestamp", "LastModifiedTimestamp", "ApproximateNumberOfMessages",
                             "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"):
                attributes.pop(volatile, None)
        rule, = [r for r in events.list_rules(EventBusName=outputs["EventBusName"])["Rules"] if r["Arn"] == outputs["RuleArn"]]
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=outputs["EventBusName"])["Targets"]
        lifecycle, = [r for r in events.list_rules(EventBusName="default")["Rules"] if r["Arn"] == outputs["LifecycleRuleArn"]]
        lifecycle_targets = events.list_targets_by_rule(Rule=lifecycle["Name"], EventBusName="default")["Targets"]
        archive = events.describe_archive(ArchiveName=outputs["ArchiveName"])
        found = {
            "queues": queues,
            "rule": {k: rule[k] for k in ("EventPattern", "State", "Description")},
            "targets": targets,
            "lifecycle rule": {k: lifecycle[k] for k in ("EventPattern", "State", "Description", "EventBusName")},
            "lifecycle targets": lifecycle_targets,
            "archive": {k: archive[k] for k in ("EventPattern", "RetentionDays", "EventSourceArn", "Description")},
            "emitter": role_policy(iam, outputs["EmitterRoleArn"]),
            "worker": role_policy(iam, outputs["WorkerRoleArn"]),
            "reconciler": role_policy(iam, outputs["ReconcilerRoleArn"]),
            "auditor": auditor_policy(iam, outputs["AuditorPolicyArn"]),
            "state": {k: v for k, v in aws("ssm", moto).get_parameter(Name=outputs["ReconcileWatermarkParameter"])[
                "Parameter"].items() if k in ("Name", "Type", "Value")},
            "dashboard": dashboard(moto, prefix),
        }
        # moto leaves a null where Fn::If chose AWS::NoValue (infra/README.md, moto gaps).
        for role in ("emitter", "worker", "reconciler"):
            found[role]["Statement"] = [s for s in found[role]["Statement"] if s]
        # (each stack has its own moto pool: the reconciler's and the auditor's grants name it)
        return json.loads(json.dumps(found).replace(prefix, "PREFIX").replace(outputs["UserPoolId"], "POOL"))

    assert settings(cdk, "uc-cdk") == settings(sam, "uc-sam")
    local_stack("delete", "--endpoint", moto, "--stack-name", "uc-sam")


def test_redeploy_is_idempotent_and_outputs_match(stack, moto):
    outputs, _ = stack
    again, stderr = deploy(moto, "uc-cdk")
    assert again == outputs and "updating stack uc-cdk" in stderr
    same, _ = local_stack("outputs", "--endpoint", moto, "--stack-name", "uc-cdk", "--cfn-template", str(TEMPLATE))
    assert same == {k: v for k, v in outputs.items() if k != "UserPoolClientId"}


def test_functions_event_source_and_permission(moto):
    outputs, stderr = deploy(
        moto, "uc-cdk-fn",
        "--param", "DeployFunctions=true",
        "--param", "AppSyncApiId=abcdefghijklmnopqrstuvwxyz",
        "--param", "WorkerBatchSize=7",
        "--param", "WorkerMaximumConcurrency=3",
        "--param", "MaxReceiveCount=9",
        "--param", "QueueVisibilityTimeoutSeconds=10",
        "--param", "FailurePolicy=fail-closed",
    )
    assert "DeployFunctions=false" not in stderr
    assert {"EmitterFunctionArn", "WorkerFunctionArn", "ReconcilerFunctionArn"} <= set(outputs)
    lam, sqs = aws("lambda", moto), aws("sqs", moto)
    emitter = lam.get_function_configuration(FunctionName=outputs["EmitterFunctionArn"])
    assert (emitter["Runtime"], emitter["Handler"], emitter["Timeout"], emitter["MemorySize"]) == ("provided.al2023", "bootstrap", 3, 128)
    assert emitter["Role"] == outputs["EmitterRoleArn"]
    env = {k: str(v) for k, v in emitter["Environment"]["Variables"].items()}
    assert env == {
        "EVENT_BUS_NAME": outputs["EventBusName"], "EVENT_SOURCE": "userconfirmed.cognito",
        "PUBLISH_BUDGET_MS": "2000", "FAILURE_POLICY": "fail-closed", "FALLBACK_QUEUE_URL": env["FALLBACK_QUEUE_URL"],
        "STACK_NAME": "uc-cdk-fn",
    }
    assert env["FALLBACK_QUEUE_URL"].endswith("/uc-cdk-fn-worker")
    worker = lam.get_function_configuration(FunctionName=outputs["WorkerFunctionArn"])
    assert (worker["Timeout"], worker["MemorySize"], worker["Role"]) == (30, 256, outputs["WorkerRoleArn"])
    wenv = {k: str(v) for k, v in worker["Environment"]["Variables"].items()}
    assert wenv["APPSYNC_API_ID"] == "abcdefghijklmnopqrstuvwxyz"
    assert set(wenv) == {"APPSYNC_API_ID", "DLQ_URL", "CONCURRENCY", "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER",
                         "STACK_NAME", "PROFILE_CREATED_EVENTS", "EVENT_BUS_NAME", "RECONCILE_STATUSES", "USER_LOOKUP_RPS"}
    assert (wenv["RECONCILE_STATUSES"], wenv["USER_LOOKUP_RPS"]) == ("CONFIRMED,EXTERNAL_PROVIDER", "5")
    assert (wenv["STACK_NAME"], wenv["PROFILE_CREATED_EVENTS"], wenv["EVENT_BUS_NAME"]) == (
        "uc-cdk-fn", "true", outputs["EventBusName"])
    # The worker acts only on the stack's own pool and source; strict mode is off (not a parameter here).
    assert wenv["USER_POOL_ID"] == outputs["UserPoolId"]
    assert (wenv["EVENT_SOURCE"], wenv["VERIFY_USER"]) == (outputs["EventSource"], "none")

    # (moto filters list_event_source_mappings by function name, not by ARN)
    mappings = {m["EventSourceArn"]: m for m in lam.list_event_source_mappings(FunctionName="uc-cdk-fn-worker")["EventSourceMappings"]}
    assert set(mappings) == {outputs["QueueArn"], outputs["LifecycleQueueArn"]}
    lifecycle = mappings[outputs["LifecycleQueueArn"]]
    assert (lifecycle["BatchSize"], lifecycle["FunctionResponseTypes"], lifecycle["ScalingConfig"]) == (
        10, ["ReportBatchItemFailures"], {"MaximumConcurrency": 2})
    mapping = mappings[outputs["QueueArn"]]
    assert (mapping["EventSourceArn"], mapping["BatchSize"]) == (outputs["QueueArn"], 7)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 3}

    statement, = json.loads(lam.get_policy(FunctionName=outputs["EmitterFunctionArn"])["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "cognito-idp.amazonaws.com"}
    assert next(iter(statement["Condition"]["ArnLike"].values())) == (
        f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{outputs['UserPoolId']}")

    queue = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert json.loads(queue["RedrivePolicy"])["maxReceiveCount"] == 9
    assert queue["VisibilityTimeout"] == "10"

    # The reconciler (its code from ReconcilerCodeS3Key: a placeholder zip until uc-reconciler is built).
    reconciler = lam.get_function_configuration(FunctionName=outputs["ReconcilerFunctionArn"])
    assert (reconciler["Timeout"], reconciler["MemorySize"], reconciler["Role"]) == (900, 256, outputs["ReconcilerRoleArn"])
    assert lam.get_function_concurrency(FunctionName="uc-cdk-fn-reconciler")["ReservedConcurrentExecutions"] == 1
    renv = {k: str(v) for k, v in reconciler["Environment"]["Variables"].items()}
    assert renv == {
        "USER_POOL_ID": outputs["UserPoolId"], "EVENT_BUS_NAME": outputs["EventBusName"], "EVENT_SOURCE": "userconfirmed.cognito",
        "RECONCILE_WATERMARK_PARAMETER": "/uc-cdk-fn/reconciler/state", "RECONCILE_OVERLAP_SECONDS": "3600",
        "RECONCILE_PUBLISH_RATE": "50", "LIST_USERS_RPS": "5", "RECONCILE_STATUSES": "CONFIRMED,EXTERNAL_PROVIDER",
        "STACK_NAME": "uc-cdk-fn",
        # The orphan sweep's second look in the pool, at the worker's pace.
        "USER_LOOKUP_RPS": "5",
        # The worker's store, where a pass checks for profiles (the API looked up by id here).
        "APPSYNC_API_ID": "abcdefghijklmnopqrstuvwxyz",
    }
    # The same moto gap as the SAM template's: the schedule and async-invoke settings are skipped.
    skipped = set(re.search(r"^moto skipped: (.*)$", stderr, re.M).group(1).split(", "))
    assert {f"{t} {canonical_name(i)}" for t, i in (s.split(" ") for s in skipped)} == MOTO_SKIPS | {
        "AWS::CloudWatch::Alarm EmitterErrorsAlarm", "AWS::CloudWatch::Alarm ReconcilerFailedAlarm",
        "AWS::Scheduler::Schedule ReconcilerSchedule", "AWS::Scheduler::Schedule ReconcilerOrphanSweepSchedule",
        "AWS::Lambda::EventInvokeConfig ReconcilerInvokeConfig"}
    deleted, _ = local_stack("delete", "--endpoint", moto, "--stack-name", "uc-cdk-fn")
    assert deleted == {"deleted": "uc-cdk-fn"}


def test_parameters_the_template_does_not_declare_are_refused(moto):
    result = subprocess.run(
        [sys.executable, str(LOCAL_STACK), "deploy", "--endpoint", moto, "--stack-name", "uc-bad",
         "--cfn-template", str(TEMPLATE), "--param", "CreateEventBus=false"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1 and "unknown template parameters: CreateEventBus" in result.stderr
