"""Tests for infra/: the SAM template, its renderer and the moto local stack (dev/local_stack.py).

* the rendered template is fresh and embeds the contract's JSON Schema verbatim;
* the template agrees with the Rust sources it configures (event pattern, env var names,
  EMF metric names and dimensions);
* every IAM role grants exactly the listed actions on the listed resources, for every
  combination of the conditions that change them; bus and queue policies say who may send;
* cfn-lint reports nothing; checkov (separate venv, dev/.venv-infra) fails no unsuppressed check;
* the template, translated by aws-sam-translator, deploys to a moto server on 127.0.0.1
  (started here, stopped by the fixture finalizer) with the right settings, and a
  UserConfirmed event put on the bus lands on the worker queue.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATE = INFRA / "template.yaml"
SCHEMA_FILE = ROOT / "schemas" / "json" / "user-confirmed.v1.schema.json"
LOCAL_STACK = ROOT / "dev" / "local_stack.py"
BIN = Path(sys.executable).parent


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_module("uc_infra_render", INFRA / "render.py")
local_stack = _load_module("uc_local_stack", LOCAL_STACK)


@pytest.fixture(scope="module")
def template() -> dict:
    return local_stack.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template["Resources"]


def rust_const(path: Path, name: str) -> str:
    match = re.search(rf'pub const {name}: &str = "([^"]*)";', path.read_text())
    assert match, f"{name} not found in {path}"
    return match.group(1)


# --------------------------------------------------------------------------- intrinsics


class Fn:
    """Evaluates the intrinsics that matter for these checks under one set of condition
    values: Fn::If picks a branch, AWS::NoValue disappears, and references become readable
    tokens ("GetAtt WorkerQueue.Arn", "Ref EventSource"); Fn::Sub stays as its template."""

    NOVALUE = object()

    def __init__(self, conditions: dict[str, bool]):
        self.conditions = conditions

    def __call__(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (key, arg), = node.items()
                if key == "Fn::If":
                    name, yes, no = arg
                    return self(yes if self.conditions[name] else no)
                if key == "Ref":
                    return self.NOVALUE if arg == "AWS::NoValue" else f"Ref {arg}"
                if key == "Fn::GetAtt":
                    return "GetAtt " + (arg if isinstance(arg, str) else ".".join(arg))
                if key == "Fn::Sub":
                    return arg if isinstance(arg, str) else arg[0]
            out = {k: self(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not self.NOVALUE}
        if isinstance(node, list):
            return [v for v in (self(x) for x in node) if v is not self.NOVALUE]
        return node


VARIANTS = {  # parameter values that flip the template's conditions
    "CreateEventBus": ["true", "false"],
    "AppSyncGraphqlUrl": ["", "https://abc.appsync-api.us-east-1.amazonaws.com/graphql"],
    "BackfillPublisherArn": ["", "arn:aws:iam::123456789012:role/backfill"],
    "AlarmTopicArn": ["", "arn:aws:sns:us-east-1:123456789012:alarms"],
    "UserPoolId": ["", "us-east-1_Abc123"],
    "DeployFunctions": ["true", "false"],
    "CreateSchemaRegistry": ["true", "false"],
    "VerifyUser": ["none", "cognito"],
}


def condition_cases(template, *parameters):
    """The template's condition values for every combination of the named parameters'
    VARIANTS (the other parameters at their defaults)."""
    for values in itertools.product(*(VARIANTS[p] for p in parameters)):
        yield local_stack.evaluate_conditions(template, dict(zip(parameters, values)))


def as_list(value):
    return value if isinstance(value, list) else [value]


def grants(role: dict, fn: Fn) -> set[tuple[str, str]]:
    """(action, resource) pairs an explicit role's inline policies allow."""
    pairs = set()
    for policy in fn(role["Properties"].get("Policies", [])):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", statement
            assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), statement
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    pairs.add((action, resource))
    return pairs


BUS_ARN_EXISTING = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${ExistingEventBusName}"
APPSYNC_API = "arn:${AWS::Partition}:appsync:${AWS::Region}:${AWS::AccountId}:apis/${AppSyncApiId}"


# --------------------------------------------------------------------------- rendering


def test_rendered_template_is_fresh():
    assert TEMPLATE.read_text(encoding="utf-8") == render.render(), (
        "infra/template.yaml is stale: run `dev/.venv/bin/python infra/render.py`"
    )


def test_schema_registry_carries_the_contract_verbatim(resources):
    schema = resources["UserConfirmedSchema"]["Properties"]
    assert schema["Type"] == "JSONSchemaDraft4"
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    assert schema["Content"] == text
    assert json.loads(schema["Content"])["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["RegistryName"] == {"Fn::GetAtt": ["SchemaRegistry", "RegistryName"]}


def test_render_rejects_a_missing_or_doubled_placeholder():
    with pytest.raises(ValueError):
        render.render(source="Resources: {}\n", schema="{}\n")
    doubled = "A:\n  Content: __USER_CONFIRMED_SCHEMA__\n  Other: __USER_CONFIRMED_SCHEMA__\n"
    with pytest.raises(ValueError):
        render.render(source=doubled, schema="{}\n")


# --------------------------------------------------------------------------- contract


def test_rule_and_archive_use_the_contracts_event_pattern(template, resources):
    rs = ROOT / "schemas" / "src" / "user_confirmed.rs"
    detail_type = rust_const(rs, "DETAIL_TYPE")
    assert template["Parameters"]["EventSource"]["Default"] == rust_const(rs, "DEFAULT_SOURCE")
    assert re.search(r'json!\(\{ "source": \[source\], "detail-type": \[DETAIL_TYPE\] \}\)', rs.read_text())

    rule = resources["UserConfirmedRule"]["Properties"]
    assert rule["EventPattern"] == {"source": [{"Ref": "EventSource"}], "detail-type": [detail_type]}
    assert rule["State"] == "ENABLED"
    archive = resources["UserConfirmedArchive"]["Properties"]
    pattern = json.loads(archive["EventPattern"]["Fn::Sub"].replace("${EventSource}", "SRC"))
    assert pattern == {"source": ["SRC"], "detail-type": [detail_type]}
    assert archive["RetentionDays"] == {"Ref": "ArchiveRetentionDays"}
    for fn in (Fn(c) for c in condition_cases(template, "CreateEventBus")):
        bus = "GetAtt EventBus.Arn" if fn.conditions["CreateBus"] else BUS_ARN_EXISTING
        assert fn(archive["SourceArn"]) == bus
        name = fn(rule["EventBusName"])
        assert name == ("GetAtt EventBus.Name" if fn.conditions["CreateBus"] else "Ref ExistingEventBusName")


def test_functions_get_only_the_variables_their_config_reads(resources):
    read = {}
    for crate in ("emitter", "worker"):
        source = (ROOT / crate / "src" / "config.rs").read_text()
        read[crate] = set(re.findall(r'env\s*\.\s*\w+\(\s*"([A-Z][A-Z0-9_]*)"', source))
    emitter_env = set(resources["EmitterFunction"]["Properties"]["Environment"]["Variables"])
    worker_env = set(resources["WorkerFunction"]["Properties"]["Environment"]["Variables"])
    assert emitter_env == {"EVENT_BUS_NAME", "EVENT_SOURCE", "PUBLISH_BUDGET_MS", "FAILURE_POLICY", "FALLBACK_QUEUE_URL"}
    assert emitter_env <= read["emitter"], emitter_env - read["emitter"]
    assert worker_env == {"APPSYNC_GRAPHQL_URL", "APPSYNC_API_ID", "DLQ_URL", "CONCURRENCY",
                          "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER"}
    assert worker_env <= read["worker"], worker_env - read["worker"]


def test_functions_settings(template, resources):
    for name, crate, timeout in (("EmitterFunction", "uc-emitter", 3), ("WorkerFunction", "uc-worker", 30)):
        props = resources[name]["Properties"]
        assert resources[name]["Type"] == "AWS::Serverless::Function"
        assert resources[name]["Condition"] == "WithFunctions"
        assert props["Runtime"] == "provided.al2023"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == "bootstrap"
        assert props["Timeout"] == timeout
        assert props["CodeUri"] == f"../target/lambda/{crate}/bootstrap.zip"
        assert "Policies" not in props, "explicit roles only: SAM would add its own"
    assert resources["EmitterFunction"]["Properties"]["MemorySize"] == 128
    # The emitter's budget fits its timeout, which fits Cognito's 5 s; the fallback reserve
    # (FALLBACK_RESERVE_MS, default 500) stays below the smallest budget.
    budget = template["Parameters"]["PublishBudgetMs"]
    assert budget["MaxValue"] < 3000 and budget["MinValue"] > 500

    worker = resources["WorkerFunction"]["Properties"]
    event = worker["Events"]["WorkerQueue"]
    assert event["Type"] == "SQS"
    assert event["Properties"] == {
        "Queue": {"Fn::GetAtt": ["WorkerQueue", "Arn"]},
        "BatchSize": {"Ref": "WorkerBatchSize"},
        "MaximumBatchingWindowInSeconds": {"Ref": "WorkerBatchingWindowSeconds"},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "WorkerMaximumConcurrency"}},
        "Enabled": True,
    }
    assert template["Parameters"]["WorkerMaximumConcurrency"]["MinValue"] == 2
    for fn in (Fn(c) for c in condition_cases(template, "AppSyncGraphqlUrl", "UserPoolId")):
        env = fn(worker["Environment"]["Variables"])
        expected = {"APPSYNC_GRAPHQL_URL"} if fn.conditions["UseGraphqlUrl"] else {"APPSYNC_API_ID"}
        fixed = {"DLQ_URL", "CONCURRENCY", "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER"}
        assert set(env) - fixed == expected
        assert env["DLQ_URL"] == "Ref WorkerDeadLetterQueue"
        # The worker acts only on the stack's own pool and source.
        trial = fn.conditions["CreateTrialUserPool"]
        assert env["USER_POOL_ID"] == ("Ref TrialUserPool" if trial else "Ref UserPoolId")
        assert env["EVENT_SOURCE"] == "Ref EventSource"
        assert env["VERIFY_USER"] == "Ref VerifyUser"


def test_queues(template, resources):
    queue = resources["WorkerQueue"]["Properties"]
    worker_timeout = resources["WorkerFunction"]["Properties"]["Timeout"]
    # A parameter (the local stack, which runs the worker itself, shortens it); its default
    # is AWS's advice for an SQS event source: at least 6 x the function's timeout.
    assert queue["VisibilityTimeout"] == {"Ref": "QueueVisibilityTimeoutSeconds"}
    assert template["Parameters"]["QueueVisibilityTimeoutSeconds"]["Default"] >= 6 * worker_timeout
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["WorkerDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    for name in ("WorkerDeadLetterQueue", "RuleDeadLetterQueue"):
        assert resources[name]["Properties"]["MessageRetentionPeriod"] == 14 * 86400
        assert resources[name]["Properties"]["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    for name in ("WorkerQueue", "WorkerDeadLetterQueue", "RuleDeadLetterQueue"):
        props = resources[name]["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name

    target, = resources["UserConfirmedRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["WorkerQueue", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["RuleDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": {"Ref": "RuleMaximumRetryAttempts"},
        "MaximumEventAgeInSeconds": {"Ref": "RuleMaximumEventAgeSeconds"},
    }


# --------------------------------------------------------------------------- IAM


def test_iam_resources_are_the_two_explicit_roles(template):
    packaged = json.loads(json.dumps(template))
    local_stack.package_code(packaged, INFRA, None)  # CodeUri -> S3 location, as `sam package`
    translated = local_stack.translate(packaged, {"AppSyncApiId": "abc"}, "us-east-1")
    iam = {k: v["Type"] for k, v in translated["Resources"].items() if v["Type"].startswith("AWS::IAM::")}
    assert iam == {"EmitterRole": "AWS::IAM::Role", "WorkerRole": "AWS::IAM::Role"}
    for name in iam:
        role = translated["Resources"][name]["Properties"]
        assert "ManagedPolicyArns" not in role and "PermissionsBoundary" not in role
        trust, = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust == {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}


def test_emitter_role_grants_exactly(template, resources):
    for fn in (Fn(c) for c in condition_cases(template, "CreateEventBus")):
        bus = "GetAtt EventBus.Arn" if fn.conditions["CreateBus"] else BUS_ARN_EXISTING
        assert grants(resources["EmitterRole"], fn) == {
            ("events:PutEvents", bus),
            ("sqs:SendMessage", "GetAtt WorkerQueue.Arn"),
            ("logs:CreateLogStream", "GetAtt EmitterLogGroup.Arn"),
            ("logs:PutLogEvents", "GetAtt EmitterLogGroup.Arn"),
        }
        publish, = [s for s in fn(resources["EmitterRole"]["Properties"]["Policies"])[0]["PolicyDocument"]["Statement"]
                    if s["Action"] == "events:PutEvents"]
        assert publish["Condition"] == {
            "StringEquals": {"events:source": "Ref EventSource", "events:detail-type": "UserConfirmed"}
        }


def test_worker_role_grants_exactly(template, resources):
    field = APPSYNC_API + "/types/Mutation/fields/createUserProfile"
    pool = "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/${UserPoolId}"
    for fn in (Fn(c) for c in condition_cases(template, "AppSyncGraphqlUrl", "VerifyUser", "UserPoolId")):
        expected = {
            ("appsync:GraphQL", field),
            ("sqs:ReceiveMessage", "GetAtt WorkerQueue.Arn"),
            ("sqs:DeleteMessage", "GetAtt WorkerQueue.Arn"),
            ("sqs:GetQueueAttributes", "GetAtt WorkerQueue.Arn"),
            ("sqs:ChangeMessageVisibility", "GetAtt WorkerQueue.Arn"),
            ("sqs:SendMessage", "GetAtt WorkerDeadLetterQueue.Arn"),
            ("logs:CreateLogStream", "GetAtt WorkerLogGroup.Arn"),
            ("logs:PutLogEvents", "GetAtt WorkerLogGroup.Arn"),
        }
        if fn.conditions["LookUpApiById"]:
            expected.add(("appsync:GetGraphqlApi", APPSYNC_API))
        if fn.conditions["VerifyUsersWithCognito"]:
            # Strict mode: the one pool's users, nothing else of Cognito.
            trial = fn.conditions["CreateTrialUserPool"]
            expected.add(("cognito-idp:AdminGetUser", "GetAtt TrialUserPool.Arn" if trial else pool))
        assert grants(resources["WorkerRole"], fn) == expected
    # The two conditions are complements: exactly one of URL / API id reaches the worker.
    conditions = template["Conditions"]
    assert conditions["UseGraphqlUrl"] == {"Fn::Not": [conditions["LookUpApiById"]]}


def test_no_wildcards_in_granted_actions_or_resources(template, resources):
    for case in condition_cases(template, "CreateEventBus", "AppSyncGraphqlUrl", "VerifyUser"):
        for role in ("EmitterRole", "WorkerRole"):
            for action, resource in grants(resources[role], Fn(case)):
                assert "*" not in action and "*" not in resource, (role, action, resource)


def test_bus_policy_lets_only_the_emitter_publish_user_confirmed(template, resources):
    policies = {k: v for k, v in resources.items() if v["Type"] == "AWS::Events::EventBusPolicy"}
    assert set(policies) == {"BusPolicyDenyForeignSource", "BusPolicyDenyForeignDetailType"}
    keys = {"BusPolicyDenyForeignSource": ("events:source", "Ref EventSource"),
            "BusPolicyDenyForeignDetailType": ("events:detail-type", "UserConfirmed")}
    for case in condition_cases(template, "CreateEventBus", "BackfillPublisherArn"):
        fn = Fn(case)
        for name, policy in policies.items():
            props = fn(policy["Properties"])
            statement = props["Statement"]
            assert props["EventBusName"] == ("GetAtt EventBus.Name" if case["CreateBus"] else "Ref ExistingEventBusName")
            assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
            assert statement["Action"] == "events:PutEvents"
            assert statement["Resource"] == ("GetAtt EventBus.Arn" if case["CreateBus"] else BUS_ARN_EXISTING)
            key, value = keys[name]
            allowed = ["GetAtt EmitterRole.Arn"] + (["Ref BackfillPublisherArn"] if case["HasBackfillPublisher"] else [])
            assert statement["Condition"] == {
                "StringEquals": {key: value},
                "ArnNotEquals": {"aws:PrincipalArn": allowed},
                "Null": {"aws:PrincipalArn": "false"},
            }


def test_queue_policies_accept_events_only_from_the_rule(resources):
    for queue, policy in (("WorkerQueue", "WorkerQueuePolicy"), ("RuleDeadLetterQueue", "RuleDeadLetterQueuePolicy")):
        props = resources[policy]["Properties"]
        assert props["Queues"] == [{"Ref": queue}]
        allow = [s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert allow == [{
            "Sid": "FromUserConfirmedRuleOnly",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue, "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["UserConfirmedRule", "Arn"]}}},
        }]
    dlq = resources["WorkerDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Effect"] for s in dlq] == ["Deny", "Deny"], "no Allow: the worker role's identity policy"


def test_queue_policies_refuse_every_other_sender(template, resources):
    """The issue-13 gap: an administrator's sqs:* identity grant must not reach the queues.
    moto does not evaluate resource-policy denies (infra/README.md), so the statements are
    checked here exactly, for both values of the one condition that changes them."""
    roles = {
        "WorkerQueuePolicy": ("WorkerQueue", ["GetAtt EmitterRole.Arn"]),
        "WorkerDeadLetterQueuePolicy": ("WorkerDeadLetterQueue", ["GetAtt WorkerRole.Arn"]),
        "RuleDeadLetterQueuePolicy": ("RuleDeadLetterQueue", []),
    }
    for case in condition_cases(template, "BackfillPublisherArn"):
        fn = Fn(case)
        for policy, (queue, allowed) in roles.items():
            statements = fn(resources[policy]["Properties"]["PolicyDocument"]["Statement"])
            denies = [s for s in statements if s.get("Sid") == "OnlyThePipelinesRolesSend"]
            assert len(denies) == 1, policy
            allowed_now = allowed + (["Ref BackfillPublisherArn"] if case["HasBackfillPublisher"] else [])
            condition = {"Null": {"aws:PrincipalArn": "false"}}
            if allowed_now:
                condition["ArnNotEquals"] = {"aws:PrincipalArn": allowed_now}
            assert denies[0] == {
                "Sid": "OnlyThePipelinesRolesSend",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": f"GetAtt {queue}.Arn",
                "Condition": condition,
            }, policy


def test_cognito_permission_names_the_pool(template, resources):
    existing = resources["EmitterInvokeFromExistingUserPool"]
    trial = resources["EmitterInvokeFromTrialUserPool"]
    for permission in (existing, trial):
        props = permission["Properties"]
        assert props["Principal"] == "cognito-idp.amazonaws.com"
        assert props["Action"] == "lambda:InvokeFunction"
        assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert existing["Properties"]["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/${UserPoolId}"
    }
    assert trial["Properties"]["SourceArn"] == {"Fn::GetAtt": ["TrialUserPool", "Arn"]}
    for case in condition_cases(template, "UserPoolId", "DeployFunctions"):
        created = [n for n in ("EmitterInvokeFromExistingUserPool", "EmitterInvokeFromTrialUserPool")
                   if case[resources[n]["Condition"]]]
        assert len(created) == (1 if case["WithFunctions"] else 0)
        if created:
            trial = created == ["EmitterInvokeFromTrialUserPool"]
            assert trial == case["CreateTrialUserPool"]


# --------------------------------------------------------------------------- alarms, parameters, outputs


def test_emf_alarms_match_the_metrics_the_code_writes(resources):
    namespace = rust_const(ROOT / "runtime" / "src" / "metrics.rs", "METRICS_NAMESPACE")
    emf = {k: v["Properties"] for k, v in resources.items()
           if v["Type"] == "AWS::CloudWatch::Alarm" and v["Properties"]["Namespace"] == namespace}
    assert {(p["MetricName"], p["Dimensions"][0]["Value"]) for p in emf.values()} == {
        ("Failed", "emitter"), ("Fallback", "emitter"), ("PermanentFailures", "worker"),
    }
    for props in emf.values():
        service = props["Dimensions"][0]["Value"]
        assert props["Dimensions"] == [{"Name": "Service", "Value": service}]
        crate = ROOT / service / "src"
        code = "\n".join(p.read_text() for p in crate.glob("*.rs"))
        assert f'MetricsRecord::new("{service}")' in code
        assert re.search(rf'count\(\s*"{props["MetricName"]}"', code), props["MetricName"]


def test_alarms_notify_the_topic_when_given(template, resources):
    alarms = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"WorkerDeadLetterQueueAlarm", "RuleDeadLetterQueueAlarm", "EmitterErrorsAlarm",
            "EmitterPublishFailedAlarm", "WorkerPermanentFailuresAlarm"} <= set(alarms)
    for case in condition_cases(template, "AlarmTopicArn", "DeployFunctions"):
        for alarm in alarms.values():
            props = Fn(case)(alarm["Properties"])
            if case["HasAlarmTopic"]:
                assert props["AlarmActions"] == ["Ref AlarmTopicArn"] == props["OKActions"]
            else:
                assert "AlarmActions" not in props and "OKActions" not in props
            assert props["TreatMissingData"] == "notBreaching"
    dlq = resources["WorkerDeadLetterQueueAlarm"]["Properties"]
    assert (dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")


def test_every_parameter_is_described_and_constrained(template):
    constraints = {"AllowedValues", "AllowedPattern", "MinValue", "MaxValue"}
    for name, spec in template["Parameters"].items():
        assert spec.get("Description", "").strip(), name
        assert constraints & set(spec), f"{name} has no constraint"


def test_outputs(template):
    assert {
        "EventBusName", "EventBusArn", "QueueUrl", "QueueArn", "WorkerDlqUrl", "RuleDlqUrl",
        "SchemaArn", "EmitterFunctionArn", "WorkerFunctionArn", "RuleArn", "ArchiveName",
        "UserPoolId",
    } <= set(template["Outputs"])


# --------------------------------------------------------------------------- linters


def test_cfn_lint_reports_nothing():
    cfn_lint = BIN / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def checkov_binary() -> Path | None:
    configured = os.environ.get("CHECKOV")
    candidates = [Path(configured)] if configured else [ROOT / "dev" / ".venv-infra" / "bin" / "checkov"]
    return next((c for c in candidates if c.is_file()), None)


def test_checkov_fails_no_unsuppressed_check():
    checkov = checkov_binary()
    if checkov is None:
        pytest.skip("checkov not installed: make lint-infra installs dev/.venv-infra (dev/requirements-infra.txt)")
    result = subprocess.run(
        [str(checkov), "--file", str(TEMPLATE), "--framework", "cloudformation",
         "--skip-download", "--output", "json", "--compact"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c["check_id"] for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == [], failed
    assert all(r["summary"]["failed"] == 0 and r["summary"]["parsing_errors"] == 0 and r["summary"]["passed"] > 0
               for r in reports), [r["summary"] for r in reports]
    assert sum(len(r["results"].get("skipped_checks", [])) for r in reports) > 0
    for r in reports:
        for check in r.get("results", {}).get("skipped_checks", []):
            comment = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(comment.strip()) > 20, f"{check['check_id']} suppressed without a reason"


# --------------------------------------------------------------------------- moto


MOTO_SKIPS = {  # resource types moto's CloudFormation does not implement (see infra/README.md)
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignSource",
    "AWS::Events::EventBusPolicy BusPolicyDenyForeignDetailType",
    "AWS::SQS::QueuePolicy WorkerQueuePolicy",
    "AWS::SQS::QueuePolicy RuleDeadLetterQueuePolicy",
    "AWS::SQS::QueuePolicy WorkerDeadLetterQueuePolicy",
    "AWS::CloudWatch::Alarm WorkerDeadLetterQueueAlarm",
    "AWS::CloudWatch::Alarm RuleDeadLetterQueueAlarm",
    "AWS::CloudWatch::Alarm WorkerQueueAgeAlarm",
    "AWS::CloudWatch::Alarm EmitterPublishFailedAlarm",
    "AWS::CloudWatch::Alarm EmitterFallbackAlarm",
    "AWS::CloudWatch::Alarm WorkerPermanentFailuresAlarm",
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
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
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
        yield endpoint
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run_local_stack(*args: str) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, str(LOCAL_STACK), *args], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # exactly one JSON object on stdout
    return json.loads(lines[0]), result.stderr


def aws(service: str, endpoint: str):
    return local_stack.client(service, endpoint, "us-east-1")


def role_policy(iam, role_arn: str) -> dict:
    name = role_arn.rsplit("/", 1)[-1]
    policy_name, = iam.list_role_policies(RoleName=name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(document, str):  # moto stores a CloudFormation-made inline policy as a repr
        document = ast.literal_eval(document)
    return document


@pytest.fixture(scope="module")
def local(moto):
    outputs, stderr = run_local_stack("deploy", "--endpoint", moto, "--stack-name", "uc-test")
    return outputs, stderr


def test_local_stack_outputs(local, moto):
    outputs, stderr = local
    assert list(outputs) == [
        "EventBusName", "EventBusArn", "EventSource", "RuleArn", "ArchiveName", "ArchiveArn",
        "QueueUrl", "QueueArn", "WorkerDlqUrl", "WorkerDlqArn", "RuleDlqUrl", "EmitterRoleArn",
        "WorkerRoleArn", "UserPoolId", "UserPoolClientId",
    ]
    assert outputs["EventBusName"] == "uc-test-events"
    assert outputs["EventSource"] == "userconfirmed.cognito"
    for key in ("QueueUrl", "WorkerDlqUrl", "RuleDlqUrl"):
        assert outputs[key].startswith(moto + "/"), outputs[key]
    skipped = re.search(r"^moto skipped: (.*)$", stderr, re.M)
    assert skipped and set(skipped.group(1).split(", ")) == MOTO_SKIPS


def test_local_stack_resources(local, moto):
    outputs, _ = local
    events, sqs, iam, idp = (aws(s, moto) for s in ("events", "sqs", "iam", "cognito-idp"))
    bus = events.describe_event_bus(Name=outputs["EventBusName"])
    assert bus["Arn"] == outputs["EventBusArn"]

    rules = [r for r in events.list_rules(EventBusName=outputs["EventBusName"])["Rules"] if r["Arn"] == outputs["RuleArn"]]
    rule, = rules
    assert json.loads(rule["EventPattern"]) == {"source": ["userconfirmed.cognito"], "detail-type": ["UserConfirmed"]}
    target, = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=outputs["EventBusName"])["Targets"]
    rule_dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["RuleDlqUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert target["Arn"] == outputs["QueueArn"]
    assert target["DeadLetterConfig"] == {"Arn": rule_dlq_arn}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}

    queue = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert json.loads(queue["RedrivePolicy"]) == {"deadLetterTargetArn": outputs["WorkerDlqArn"], "maxReceiveCount": 5}
    assert queue["VisibilityTimeout"] == "180"
    assert queue["MessageRetentionPeriod"] == "345600"
    assert queue["SqsManagedSseEnabled"] == "true"
    for url in (outputs["WorkerDlqUrl"], outputs["RuleDlqUrl"]):
        dlq = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert dlq["MessageRetentionPeriod"] == "1209600"

    archive = events.describe_archive(ArchiveName=outputs["ArchiveName"])
    assert archive["EventSourceArn"] == outputs["EventBusArn"]
    assert archive["RetentionDays"] == 365
    assert json.loads(archive["EventPattern"]) == {"source": ["userconfirmed.cognito"], "detail-type": ["UserConfirmed"]}

    emitter = role_policy(iam, outputs["EmitterRoleArn"])
    assert {s["Sid"]: s["Resource"] for s in emitter["Statement"]}["PublishUserConfirmed"] == outputs["EventBusArn"]
    worker = role_policy(iam, outputs["WorkerRoleArn"])
    sids = {s["Sid"]: s["Resource"] for s in worker["Statement"] if s}
    assert sids["CreateUserProfileOnly"] == "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Mutation/fields/createUserProfile"
    assert sids["ConsumeWorkerQueue"] == outputs["QueueArn"]
    assert sids["DeadLetterPermanentFailures"] == outputs["WorkerDlqArn"]

    pool = idp.describe_user_pool(UserPoolId=outputs["UserPoolId"])["UserPool"]
    assert pool["Name"] == "uc-test"
    idp.describe_user_pool_client(UserPoolId=outputs["UserPoolId"], ClientId=outputs["UserPoolClientId"])
    # The local stack runs the binaries itself: no function in moto.
    assert "EmitterFunctionArn" not in outputs
    assert not [f for f in aws("lambda", moto).list_functions()["Functions"] if f["FunctionName"].startswith("uc-test-")]


def test_user_confirmed_event_reaches_the_worker_queue(local, moto):
    import jsonschema

    outputs, _ = local
    events, sqs = aws("events", moto), aws("sqs", moto)
    detail = json.loads((ROOT / "schemas" / "examples" / "detail.email-alias.json").read_text())
    entries = [
        {"EventBusName": outputs["EventBusName"], "Source": "someone.else", "DetailType": "UserConfirmed", "Detail": json.dumps(detail)},
        {"EventBusName": outputs["EventBusName"], "Source": "userconfirmed.cognito", "DetailType": "SomethingElse", "Detail": json.dumps(detail)},
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


def test_redeploy_is_idempotent(local, moto):
    outputs, _ = local
    again, stderr = run_local_stack("deploy", "--endpoint", moto, "--stack-name", "uc-test")
    assert again == outputs
    assert "updating stack uc-test" in stderr
    same, _ = run_local_stack("outputs", "--endpoint", moto, "--stack-name", "uc-test")
    assert same == {k: v for k, v in outputs.items() if k != "UserPoolClientId"}


def test_functions_event_source_and_permission_in_moto(moto):
    outputs, _ = run_local_stack(
        "deploy", "--endpoint", moto, "--stack-name", "uc-fn",
        "--param", "DeployFunctions=true",
        "--param", "AppSyncApiId=abcdefghijklmnopqrstuvwxyz",
        "--param", "AppSyncGraphqlUrl=https://abcdefghijklmnopqrstuvwxyz.appsync-api.us-east-1.amazonaws.com/graphql",
        "--param", "WorkerBatchSize=7",
        "--param", "WorkerMaximumConcurrency=3",
        "--param", "MaxReceiveCount=9",
        "--param", "FailurePolicy=fail-closed",
    )
    lam, sqs = aws("lambda", moto), aws("sqs", moto)
    emitter = lam.get_function_configuration(FunctionName=outputs["EmitterFunctionArn"])
    assert (emitter["Runtime"], emitter["Handler"], emitter["Timeout"], emitter["MemorySize"]) == ("provided.al2023", "bootstrap", 3, 128)
    env = {k: str(v) for k, v in emitter["Environment"]["Variables"].items()}
    assert env["EVENT_BUS_NAME"] == outputs["EventBusName"]
    assert env["FAILURE_POLICY"] == "fail-closed"
    assert env["FALLBACK_QUEUE_URL"].endswith("/uc-fn-worker")
    worker = lam.get_function_configuration(FunctionName=outputs["WorkerFunctionArn"])
    assert (worker["Timeout"], worker["Role"]) == (30, outputs["WorkerRoleArn"])
    wenv = {k: str(v) for k, v in worker["Environment"]["Variables"].items()}
    assert set(wenv) == {"APPSYNC_GRAPHQL_URL", "DLQ_URL", "CONCURRENCY", "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER"}
    assert wenv["USER_POOL_ID"] == outputs["UserPoolId"]
    assert (wenv["EVENT_SOURCE"], wenv["VERIFY_USER"]) == (outputs["EventSource"], "none")

    # (moto filters list_event_source_mappings by function name, not by ARN)
    mapping, = lam.list_event_source_mappings(FunctionName="uc-fn-worker")["EventSourceMappings"]
    assert mapping["FunctionArn"] == outputs["WorkerFunctionArn"]
    assert mapping["EventSourceArn"] == outputs["QueueArn"]
    assert mapping["BatchSize"] == 7
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 3}

    policy = json.loads(lam.get_policy(FunctionName=outputs["EmitterFunctionArn"])["Policy"])
    statement, = policy["Statement"]
    assert statement["Principal"] == {"Service": "cognito-idp.amazonaws.com"}
    source_arn = next(iter(statement["Condition"]["ArnLike"].values()))
    assert source_arn == f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{outputs['UserPoolId']}"

    redrive = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(redrive["RedrivePolicy"])["maxReceiveCount"] == 9
    deleted, _ = run_local_stack("delete", "--endpoint", moto, "--stack-name", "uc-fn")
    assert deleted == {"deleted": "uc-fn"}


def test_existing_bus_mode_in_moto(moto):
    outputs, _ = run_local_stack(
        "deploy", "--endpoint", moto, "--stack-name", "uc-shared",
        "--param", "CreateEventBus=false", "--param", "ExistingEventBusName=default",
        "--param", "EventSource=example.signup", "--no-user-pool", "--param", "UserPoolId=us-east-1_Existing1",
    )
    assert outputs["EventBusName"] == "default"
    assert outputs["EventBusArn"] == "arn:aws:events:us-east-1:123456789012:event-bus/default"
    assert "UserPoolClientId" not in outputs and outputs["UserPoolId"] == "us-east-1_Existing1"
    events = aws("events", moto)
    rule, = [r for r in events.list_rules(EventBusName="default")["Rules"] if r["Arn"] == outputs["RuleArn"]]
    assert json.loads(rule["EventPattern"]) == {"source": ["example.signup"], "detail-type": ["UserConfirmed"]}
    run_local_stack("delete", "--endpoint", moto, "--stack-name", "uc-shared")


def test_local_stack_refuses_a_non_loopback_endpoint():
    result = subprocess.run(
        [sys.executable, str(LOCAL_STACK), "deploy", "--endpoint", "https://cloudformation.us-east-1.amazonaws.com",
         "--stack-name", "x"], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1 and "loopback" in result.stderr and result.stdout == ""
