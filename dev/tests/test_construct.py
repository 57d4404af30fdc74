"""One source of truth: the CDK construct (infra/cdk) against the SAM template (infra/template.yaml).

The construct's synthesized templates (committed; infra/cdk/check.sh keeps them fresh) are
compared with the SAM template as aws-sam-translator translates it, under the same choices:

* ``uc-pipeline.template.json`` (the SAM template's parameters, kept symbolic on both sides)
  against SAM with an existing pool and the API looked up by id;
* ``example/synth/UserConfirmedPipelineOptions.template.json`` (every option set, as literals)
  against SAM with the same values substituted for its parameters.

The SAM parameters that switch conditions are literal choices in both construct templates, so
their values are substituted on the SAM side in both comparisons (e.g. the worker's VERIFY_USER).

Both sides are reduced to one canonical form: logical ids to the SAM template's (the construct's
ids are "<scope><SamId><hash>"), intrinsics to strings ("${Param}", "${Resource.Attr}") whatever
function built them (Fn::Sub, Fn::Join, Ref), Fn::If resolved, scalars as strings. Then every
resource must match, property by property, except the differences listed in DOCUMENTED (each with
its reason). The dashboard's body is compared as parsed JSON (after the intrinsics become
strings). The Amplify stand-in (root + nested stacks) is checked for placement and cycles.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "infra" / "cdk"
MAIN = CDK / "uc-pipeline.template.json"
SYNTH = CDK / "example" / "synth"
OPTIONS = SYNTH / "UserConfirmedPipelineOptions.template.json"
SCHEMA_FILE = ROOT / "schemas" / "json" / "user-confirmed.v1.schema.json"
PROFILE_SCHEMA_FILE = ROOT / "schemas" / "json" / "profile-created.v1.schema.json"
USER_DELETED_SCHEMA_FILE = ROOT / "schemas" / "json" / "user-deleted.v1.schema.json"
PROFILE_DELETED_SCHEMA_FILE = ROOT / "schemas" / "json" / "profile-deleted.v1.schema.json"

_spec = importlib.util.spec_from_file_location("uc_local_stack_c", ROOT / "dev" / "local_stack.py")
local_stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_stack)

# SAM parameters that switch the template's conditions: construct options decided at synth time.
SAM_ONLY_PARAMETERS = {
    "CreateEventBus", "ExistingEventBusName", "BackfillPublisherArn", "CreateSchemaRegistry",
    "AlarmTopicArn", "DeployFunctions", "AppSyncGraphqlUrl", "VerifyUser", "PublishProfileCreated",
    # Issue 22: the lifecycle's resources and grants, and the trail (props lifecycleEvents, createTrail).
    "LifecycleEvents", "CreateTrail",
    # The DynamoDB profile store (issue 15): the construct has only the AppSync store so far; both
    # comparisons choose ProfileStore=appsync.
    "ProfileStore", "ProfileTableName", "ProfileTypeName",
}
# Where the code comes from: SAM packages CodeUri, the standalone stack takes S3 parameters.
CDK_ONLY_PARAMETERS = {"CodeS3Bucket", "EmitterCodeS3Key", "WorkerCodeS3Key", "ReconcilerCodeS3Key"}
# The SAM name is about its two branches (existing pool / trial pool); the construct has one.
RENAMED = {"EmitterInvokeFromExistingUserPool": "EmitterInvokeFromUserPool"}

DOCUMENTED = {
    # (resource type, property path) -> why the two templates may differ there
    ("AWS::Lambda::Function", "Code"): "SAM: the packaged CodeUri; construct: the lambda.Code it is given",
    ("AWS::Lambda::Function", "Tags"): "SAM tags its functions lambda:createdBy=SAM",
}
# DeletionPolicy/UpdateReplacePolicy the construct writes out: Delete, CloudFormation's default
# for these types and so what the SAM template (which sets none) gets.
EXPLICIT_DELETE = {"AWS::SQS::Queue", "AWS::Logs::LogGroup"}

MAIN_SAM_PARAMS = {  # an existing pool, the API looked up by id: the standalone stack's shape
    "UserPoolId": "us-east-1_Example1", "AppSyncApiId": "abc", "DeployFunctions": "true",
    "CreateSchemaRegistry": "true", "CreateEventBus": "true", "AppSyncGraphqlUrl": "", "VerifyUser": "none",
    "PublishProfileCreated": "true", "ProfileStore": "appsync", "LifecycleEvents": "true", "CreateTrail": "false",
}
OPTIONS_SAM_PARAMS = {  # infra/cdk/example/standalone.ts OptionsStack, value for value
    "UserPoolId": "us-east-1_Options1",
    "AppSyncApiId": "abcdefghijklmnopqrstuvwxyz",
    "AppSyncGraphqlUrl": "https://abcdefghijklmnopqrstuvwxyz.appsync-api.us-east-1.amazonaws.com/graphql",
    "NamePrefix": "uc-options",
    "EventSource": "example.signup",
    "CreateEventBus": "false",
    "ExistingEventBusName": "default",
    "BackfillPublisherArn": "arn:aws:iam::123456789012:role/backfill",
    "VerifyUser": "cognito",
    "PublishProfileCreated": "false",
    # lifecycleEvents stays on (its DynamoDB grants compared); selftest.ts covers false.
    "LifecycleEvents": "true",
    "CreateTrail": "true",
    "WorkerUserLookupRate": "3",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
    "CreateSchemaRegistry": "false",
    "ArchiveRetentionDays": "30",
    "RuleMaximumRetryAttempts": "10",
    "RuleMaximumEventAgeSeconds": "3600",
    "PublishBudgetMs": "1500",
    "FailurePolicy": "fail-closed",
    "MaxReceiveCount": "3",
    "QueueVisibilityTimeoutSeconds": "240",
    "WorkerBatchSize": "5",
    "WorkerBatchingWindowSeconds": "2",
    "WorkerMaximumConcurrency": "7",
    "WorkerCallConcurrency": "4",
    "WorkerMemorySize": "512",
    "LogRetentionDays": "90",
    "ReconcileSchedule": "cron(0 3 * * ? *)",
    "ReconcileScheduleState": "DISABLED",
    "OrphanSweepSchedule": "cron(0 4 ? * SUN *)",
    "OrphanSweepScheduleState": "DISABLED",
    "ReconcileOverlapSeconds": "172800",
    "ReconcilePublishRate": "20",
    "ReconcileListUsersRate": "2",
    "ReconcileStatuses": "CONFIRMED,EXTERNAL_PROVIDER,RESET_REQUIRED",
    "ReconcileBehindAlarmSeconds": "86400",
    "DeployFunctions": "true",
    # The other store: the construct's profileStore "dynamodb" (statements, variables, grants).
    "ProfileStore": "dynamodb",
    "ProfileTableName": "UserProfile-abcdefghijklmnopqrstuvwxyz-dev",
    "ProfileTypeName": "Profile",
}


# --------------------------------------------------------------------------- canonical form


class Canon:
    """Renders a template fragment canonically. ``ids`` maps logical ids to canonical names;
    ``params`` are substituted for Refs (others stay "${Name}"); ``conditions`` resolve Fn::If."""

    NOVALUE = object()

    def __init__(self, template: dict, ids: dict[str, str], params: dict[str, str], conditions: dict[str, bool]):
        self.parameters = set(template.get("Parameters", {}))
        self.ids, self.params, self.conditions = ids, params, conditions

    def ref(self, name: str) -> str:
        if name in self.params and name in self.parameters:
            return self.params[name]
        if name in self.parameters or name.startswith("AWS::"):
            return "${" + name + "}"
        return "${" + self.ids.get(name, "?" + name) + "}"

    def getatt(self, name: str, attr: str) -> str:
        return "${" + self.ids.get(name, "?" + name) + "." + attr + "}"

    def sub(self, text: str, variables: dict | None = None) -> str:
        def one(match: re.Match) -> str:
            inner = match.group(1)
            if variables and inner in variables:
                return self.text(variables[inner])
            if "." in inner and not inner.startswith("AWS::"):
                return self.getatt(*inner.split(".", 1))
            return self.ref(inner)
        return re.sub(r"\$\{([^}!][^}]*)\}", one, text)

    def text(self, node) -> str:
        value = self(node)
        assert isinstance(value, str), f"expected a string, got {value!r}"
        return value

    def __call__(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.NOVALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                name, attr = (arg if isinstance(arg, list) else arg.split(".", 1))
                return self.getatt(name, attr)
            if key == "Fn::Sub":
                return self.sub(arg) if isinstance(arg, str) else self.sub(arg[0], arg[1])
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(self.text(p) for p in parts)
            if key == "Fn::If":
                name, yes, no = arg
                return self(yes if self.conditions[name] else no)
        if isinstance(node, dict):
            out = {k: self(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not self.NOVALUE}
        if isinstance(node, list):
            return [v for v in (self(x) for x in node) if v is not self.NOVALUE]
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)


def normalise(value, key: str = ""):
    """Spellings that mean the same: a one-element list vs a scalar for policy Action/Resource
    (as sorted lists), an event pattern as a JSON string vs an object, a dashboard body's JSON
    text whatever its layout."""
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalise(v) for v in value]
        return sorted(items, key=json.dumps) if key in ("Action", "Resource") else items
    if key in ("Action", "Resource"):
        return [value]
    if key == "EventPattern" and isinstance(value, str):
        return normalise(json.loads(value))
    if key == "DashboardBody" and isinstance(value, str):
        return json.loads(value)
    return value


def sam_template(params: dict[str, str]) -> tuple[dict, dict[str, bool]]:
    key = json.dumps(params, sort_keys=True)
    if key not in _SAM_CACHE:
        _SAM_CACHE[key] = _sam_template(params)
    return copy.deepcopy(_SAM_CACHE[key])


_SAM_CACHE: dict[str, tuple[dict, dict[str, bool]]] = {}


def _sam_template(params: dict[str, str]) -> tuple[dict, dict[str, bool]]:
    template = local_stack.load_template(local_stack.DEFAULT_TEMPLATE)
    local_stack.package_code(template, local_stack.DEFAULT_TEMPLATE.parent, None)
    translated = local_stack.translate(template, params, "us-east-1")
    pruned = local_stack.prune_false_conditions(translated, params)
    return pruned, local_stack.evaluate_conditions(translated, params)


def construct_ids(template: dict, sam_names: set[str], prefixes: tuple[str, ...]) -> dict[str, str]:
    """Canonical (SAM) names of the construct's logical ids "<prefix><name><8 hex>"."""
    wanted = sam_names | set(RENAMED.values())
    ids = {}
    for logical_id in template["Resources"]:
        for prefix in prefixes:
            match = re.fullmatch(re.escape(prefix) + r"(\w+?)([0-9A-F]{8})", logical_id)
            if match and match.group(1) in wanted:
                ids[logical_id] = match.group(1)
                break
    return ids


class Pair:
    """The SAM template and a construct template, both canonical, resources by SAM name."""

    def __init__(self, cdk_template: dict, sam_params: dict[str, str], substitute: bool):
        self.sam_raw, conditions = sam_template(sam_params)
        self.cdk_raw = cdk_template
        sam_ids = {k: RENAMED.get(k, k) for k in self.sam_raw["Resources"]}
        cdk_ids = construct_ids(self.cdk_raw, set(sam_ids.values()), ("Pipeline",))
        # Construct resources with no SAM counterpart keep their own id (and so show as drift).
        cdk_ids.update({k: k for k in self.cdk_raw["Resources"] if k not in cdk_ids})
        # The construct's synth-time choices are literals in its template: substitute them on
        # the SAM side always, the value parameters only when the construct has them as literals.
        given = sam_params if substitute else {k: v for k, v in sam_params.items() if k in SAM_ONLY_PARAMETERS}
        self.sam_params = sam_params
        self.api_id = given.get("AppSyncApiId", "${AppSyncApiId}")
        sam = Canon(self.sam_raw, sam_ids, given, conditions)
        cdk = Canon(self.cdk_raw, cdk_ids, {}, {})
        self.sam = {sam_ids[k]: {**v, "Properties": normalise(sam(v.get("Properties", {})))}
                    for k, v in self.sam_raw["Resources"].items()}
        self.cdk = {cdk_ids[k]: {**v, "Properties": normalise(cdk(v.get("Properties", {})))}
                    for k, v in self.cdk_raw["Resources"].items()}
        self.sam_outputs = {k: {"Value": normalise(sam(v["Value"])), "Description": v.get("Description")}
                            for k, v in self.sam_raw.get("Outputs", {}).items()}
        self.cdk_outputs = {k: {"Value": normalise(cdk(v["Value"])), "Description": v.get("Description")}
                            for k, v in self.cdk_raw.get("Outputs", {}).items()}

    def of_type(self, side: dict, type_: str) -> dict:
        return {k: v for k, v in side.items() if v["Type"] == type_}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module", params=["main", "options"])
def pair(request) -> Pair:
    if request.param == "main":
        return Pair(load(MAIN), MAIN_SAM_PARAMS, substitute=False)
    return Pair(load(OPTIONS), OPTIONS_SAM_PARAMS, substitute=True)


def drift(pair: Pair) -> list[str]:
    """Every difference between the two templates that DOCUMENTED does not explain."""
    found = []
    for name in sorted(set(pair.sam) ^ set(pair.cdk)):
        side = "SAM" if name in pair.sam else "construct"
        found.append(f"{name}: only in the {side} template ({(pair.sam | pair.cdk)[name]['Type']})")
    for name in sorted(set(pair.sam) & set(pair.cdk)):
        sam, cdk = pair.sam[name], pair.cdk[name]
        if sam["Type"] != cdk["Type"]:
            found.append(f"{name}: type {sam['Type']} vs {cdk['Type']}")
            continue
        for key in sorted(set(sam["Properties"]) | set(cdk["Properties"])):
            if (sam["Type"], key) in DOCUMENTED:
                continue
            if sam["Properties"].get(key) != cdk["Properties"].get(key):
                found.append(f"{name}.{key}:\n  SAM:       {json.dumps(sam['Properties'].get(key))}"
                             f"\n  construct: {json.dumps(cdk['Properties'].get(key))}")
    expected = {k: v for k, v in pair.sam_outputs.items() if k != "UserPoolClientId"}  # trial pool only
    for name in sorted(set(expected) | set(pair.cdk_outputs)):
        if expected.get(name) != pair.cdk_outputs.get(name):
            found.append(f"output {name}: SAM {expected.get(name)} vs construct {pair.cdk_outputs.get(name)}")
    return found


# --------------------------------------------------------------------------- resources


def test_same_resources_by_type_and_name(pair):
    assert Counter(v["Type"] for v in pair.cdk.values()) == Counter(v["Type"] for v in pair.sam.values())
    assert set(pair.cdk) == set(pair.sam)


def test_every_resource_matches_property_by_property(pair):
    found = drift(pair)
    assert not found, "construct and SAM template differ:\n" + "\n".join(found)


def mutate_statement(template: dict, sid: str, change) -> None:
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            for statement in resource["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
                if statement.get("Sid") == sid:
                    change(statement)


def drop_statement(template: dict, sid: str) -> None:
    dropped = 0
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            document = resource["Properties"]["Policies"][0]["PolicyDocument"]
            kept = [s for s in document["Statement"] if s.get("Sid") != sid]
            dropped += len(document["Statement"]) - len(kept)
            document["Statement"] = kept
    assert dropped == 1, (sid, dropped)


def mutate_resource(template: dict, name: str, change) -> None:
    resource, = [v for k, v in template["Resources"].items() if re.fullmatch(rf"Pipeline{name}[0-9A-F]{{8}}", k)]
    change(resource["Properties"])


def mutate_queue_deny(template: dict, policy: str, change) -> None:
    """``change`` gets the OnlyThePipelinesRolesSend statement's Condition of queue policy ``policy``."""
    def edit(properties: dict) -> None:
        deny, = [s for s in properties["PolicyDocument"]["Statement"] if s.get("Sid") == "OnlyThePipelinesRolesSend"]
        change(deny["Condition"])
    mutate_resource(template, policy, edit)


def mutate_dashboard(template: dict, change) -> None:
    """``change`` gets the construct's dashboard body, parsed; it is written back as the same
    Fn::Join of literal text and intrinsics (each intrinsic kept as a placeholder string)."""
    def edit(properties: dict) -> None:
        parts = properties["DashboardBody"]["Fn::Join"][1]
        tokens = {f"@@{i}@@": part for i, part in enumerate(parts) if not isinstance(part, str)}
        text = "".join(part if isinstance(part, str) else f"@@{i}@@" for i, part in enumerate(parts))
        body = json.loads(text)
        change(body)
        pieces = re.split(r"(@@\d+@@)", json.dumps(body))
        properties["DashboardBody"]["Fn::Join"][1] = [tokens.get(piece, piece) for piece in pieces if piece]
    mutate_resource(template, "Dashboard", edit)


def without_role(role: str):
    """Drops from an ArnNotEquals list the entry naming ``role`` (a GetAtt of that resource or the ARN itself)."""
    def change(condition: dict) -> None:
        allowed = condition["ArnNotEquals"]["aws:PrincipalArn"]
        kept = [a for a in allowed if role not in json.dumps(a)]
        assert len(kept) == len(allowed) - 1, allowed
        condition["ArnNotEquals"]["aws:PrincipalArn"] = kept
    return change


DRIFTS = {  # one edit of the construct's template -> the drift it must show (the main template unless "options")
    "extra action": (lambda t: mutate_statement(t, "ConsumeWorkerQueue", lambda s: s["Action"].append("sqs:GetQueueUrl")),
                     "WorkerRole.Policies"),
    "wider resource": (lambda t: mutate_statement(t, "FallbackToWorkerQueue", lambda s: s.update(Resource="*")),
                       "EmitterRole.Policies"),
    "retention": (lambda t: mutate_resource(t, "WorkerQueue", lambda p: p.update(MessageRetentionPeriod=86400)),
                  "WorkerQueue.MessageRetentionPeriod"),
    "redrive": (lambda t: mutate_resource(t, "WorkerQueue", lambda p: p["RedrivePolicy"].update(maxReceiveCount=5)),
                "WorkerQueue.RedrivePolicy"),
    "no SSE": (lambda t: mutate_resource(t, "RuleDeadLetterQueue", lambda p: p.pop("SqsManagedSseEnabled")),
               "RuleDeadLetterQueue.SqsManagedSseEnabled"),
    "env name": (lambda t: mutate_resource(t, "WorkerFunction", lambda p: p["Environment"]["Variables"].update(
        DEAD_LETTER_URL=p["Environment"]["Variables"].pop("DLQ_URL"))), "WorkerFunction.Environment"),
    "timeout": (lambda t: mutate_resource(t, "EmitterFunction", lambda p: p.update(Timeout=5)), "EmitterFunction.Timeout"),
    "pattern": (lambda t: mutate_resource(t, "UserConfirmedRule", lambda p: p["EventPattern"].update({"detail-type": ["X"]})),
                "UserConfirmedRule.EventPattern"),
    "extra policy": (lambda t: t["Resources"].update(ExtraPolicy={"Type": "AWS::IAM::Policy", "Properties": {}}),
                     "ExtraPolicy: only in the construct template"),
    "lost alarm": (lambda t: t["Resources"].pop(next(k for k in t["Resources"] if "EmitterErrorsAlarm" in k)),
                   "EmitterErrorsAlarm: only in the SAM template"),
    # The queues' Deny for every other sender: a role missing from the allowed list, a role the
    # rule DLQ (no role may send) lets through, the operators' back-fill role left out.
    "deny misses the worker role": (lambda t: mutate_queue_deny(t, "WorkerDeadLetterQueuePolicy", without_role("WorkerRole")),
                                    "WorkerDeadLetterQueuePolicy.PolicyDocument"),
    "deny lets a role send to the rule DLQ": (
        lambda t: mutate_queue_deny(t, "RuleDeadLetterQueuePolicy", lambda c: c.update(ArnNotEquals={"aws:PrincipalArn": [
            {"Fn::GetAtt": [next(k for k in t["Resources"] if "EmitterRole" in k), "Arn"]}]})),
        "RuleDeadLetterQueuePolicy.PolicyDocument"),
    "deny misses the back-fill role": (
        lambda t: mutate_queue_deny(t, "WorkerQueuePolicy", without_role(OPTIONS_SAM_PARAMS["BackfillPublisherArn"])),
        "WorkerQueuePolicy.PolicyDocument", "options"),
    "no AdminGetUser in strict mode": (
        lambda t: drop_statement(t, "CheckUsersInThePool"),
        "WorkerRole.Policies", "options"),
    "strict mode's env": (lambda t: mutate_resource(t, "WorkerFunction", lambda p: p["Environment"]["Variables"].update(
        VERIFY_USER="none")), "WorkerFunction.Environment", "options"),
    # Issue 14: the Stack dimension, the ProfileCreated grant and bus policy, the dashboard.
    "no STACK_NAME": (lambda t: mutate_resource(t, "EmitterFunction", lambda p: p["Environment"]["Variables"].pop("STACK_NAME")),
                      "EmitterFunction.Environment"),
    "alarm without the Stack dimension": (
        lambda t: mutate_resource(t, "WorkerPermanentFailuresAlarm", lambda p: p.update(Dimensions=p["Dimensions"][:1])),
        "WorkerPermanentFailuresAlarm.Dimensions"),
    "AnnounceProfiles without its condition": (
        lambda t: mutate_statement(t, "AnnounceProfiles", lambda s: s.pop("Condition")), "WorkerRole.Policies"),
    "AnnounceProfiles for UserConfirmed": (
        lambda t: mutate_statement(t, "AnnounceProfiles", lambda s: s["Condition"]["StringEquals"].update(
            {"events:detail-type": "UserConfirmed"})), "WorkerRole.Policies"),
    "no AnnounceProfiles": (lambda t: drop_statement(t, "AnnounceProfiles"), "WorkerRole.Policies"),
    "AnnounceProfiles when not publishing": (
        lambda t: mutate_statement(t, "DeadLetterPermanentFailures", lambda s: s.update(
            Action=["sqs:SendMessage", "events:PutEvents"])), "WorkerRole.Policies", "options"),
    "ProfileCreated published while switched off": (
        lambda t: mutate_resource(t, "WorkerFunction", lambda p: p["Environment"]["Variables"].update(
            PROFILE_CREATED_EVENTS="true")), "WorkerFunction.Environment", "options"),
    "ProfileCreated deny lets the emitter": (
        lambda t: mutate_resource(t, "BusPolicyDenyForeignProfileCreated", lambda p: p["Statement"]["Condition"][
            "ArnNotEquals"]["aws:PrincipalArn"].append(
            {"Fn::GetAtt": [next(k for k in t["Resources"] if "EmitterRole" in k), "Arn"]})),
        "BusPolicyDenyForeignProfileCreated.Statement"),
    "source deny blocks the worker's ProfileCreated": (
        lambda t: mutate_resource(t, "BusPolicyDenyForeignSource", lambda p: p["Statement"]["Condition"].pop("StringNotEquals")),
        "BusPolicyDenyForeignSource.Statement"),
    "dashboard metric without the Stack filter": (
        lambda t: mutate_dashboard(t, lambda body: body["widgets"][1]["properties"]["metrics"][0].__delitem__(slice(4, 6))),
        "Dashboard.DashboardBody"),
    "dashboard graph lost": (lambda t: mutate_dashboard(t, lambda body: body["widgets"].pop()), "Dashboard.DashboardBody"),
    "dashboard percentile": (
        lambda t: mutate_dashboard(t, lambda body: body["widgets"][1]["properties"]["metrics"][1][-1].update(stat="p90")),
        "Dashboard.DashboardBody"),
    "dashboard gone": (lambda t: t["Resources"].pop(next(k for k in t["Resources"] if re.fullmatch(r"PipelineDashboard[0-9A-F]{8}", k))),
                       "Dashboard: only in the SAM template"),
    # Issue 12: the reconciler, its schedule, its state, the bus policies naming it, the auditor.
    "bus deny misses the reconciler": (
        lambda t: mutate_resource(t, "BusPolicyDenyForeignDetailType", lambda p: without_role("ReconcilerRole")(
            p["Statement"]["Condition"])), "BusPolicyDenyForeignDetailType.Statement"),
    "reconciler may publish any detail-type": (
        lambda t: mutate_statement(t, "KeepReconcileState", lambda s: s["Action"].append("events:PutEvents")),
        "ReconcilerRole.Policies"),
    "reconciler runs concurrently": (
        lambda t: mutate_resource(t, "ReconcilerFunction", lambda p: p.pop("ReservedConcurrentExecutions")),
        "ReconcilerFunction.ReservedConcurrentExecutions"),
    "reconciler env name": (lambda t: mutate_resource(t, "ReconcilerFunction", lambda p: p["Environment"]["Variables"].update(
        LIST_USERS_RATE=p["Environment"]["Variables"].pop("LIST_USERS_RPS"))), "ReconcilerFunction.Environment"),
    "failed passes retried": (lambda t: mutate_resource(t, "ReconcilerInvokeConfig", lambda p: p.update(MaximumRetryAttempts=2)),
                              "ReconcilerInvokeConfig.MaximumRetryAttempts"),
    "schedule with a flexible window": (
        lambda t: mutate_resource(t, "ReconcilerSchedule", lambda p: p.update(
            FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15})), "ReconcilerSchedule.FlexibleTimeWindow"),
    "orphan sweep without its input": (
        lambda t: mutate_resource(t, "ReconcilerOrphanSweepSchedule", lambda p: p["Target"].pop("Input")),
        "ReconcilerOrphanSweepSchedule.Target"),
    "orphan sweep as a dry run": (
        lambda t: mutate_resource(t, "ReconcilerOrphanSweepSchedule", lambda p: p["Target"].update(
            Input='{"orphans": {"dryRun": true}}')), "ReconcilerOrphanSweepSchedule.Target", "options"),
    "no orphan sweep schedule": (
        lambda t: t["Resources"].pop(next(k for k in t["Resources"] if "ReconcilerOrphanSweepSchedule" in k)),
        "ReconcilerOrphanSweepSchedule: only in the SAM template"),
    "orphan sweep on the pass's schedule": (
        lambda t: mutate_resource(t, "ReconcilerOrphanSweepSchedule", lambda p: p.update(
            ScheduleExpression={"Ref": "ReconcileSchedule"})), "ReconcilerOrphanSweepSchedule.ScheduleExpression"),
    "sweep may read the store with GetItem too": (
        lambda t: mutate_resource(t, "ReconcilerStoreDeletePolicy", lambda p: p["PolicyDocument"]["Statement"][1].update(
            Action=["dynamodb:Scan", "dynamodb:GetItem"])), "ReconcilerStoreDeletePolicy.PolicyDocument", "options"),
    "sweep lists every field": (
        lambda t: mutate_resource(t, "ReconcilerStoreDeletePolicy", lambda p: p["PolicyDocument"]["Statement"][1].update(
            Resource="*")),
        "ReconcilerStoreDeletePolicy.PolicyDocument"),
    "sweep without the worker's lookup pace": (
        lambda t: mutate_resource(t, "ReconcilerFunction", lambda p: p["Environment"]["Variables"].pop("USER_LOOKUP_RPS")),
        "ReconcilerFunction.Environment"),
    "scheduler may invoke anything": (
        lambda t: mutate_statement(t, "InvokeReconciler", lambda s: s.update(Resource="*")), "ReconcilerSchedulerRole.Policies"),
    "state parameter's initial value": (lambda t: mutate_resource(t, "ReconcileWatermarkParameter", lambda p: p.update(Value="")),
                                        "ReconcileWatermarkParameter.Value"),
    "no reconciler-behind alarm": (lambda t: t["Resources"].pop(next(k for k in t["Resources"] if "ReconcilerBehindAlarm" in k)),
                                   "ReconcilerBehindAlarm: only in the SAM template"),
    "auditor may run mutations": (
        lambda t: mutate_resource(t, "AuditorPolicy", lambda p: p["PolicyDocument"]["Statement"][0].update(Action="appsync:*")),
        "AuditorPolicy.PolicyDocument"),
    # Issue 22: the lifecycle's rule, queue, event source, grants and bus policies, and the trail.
    "lifecycle rule on another bus": (
        lambda t: mutate_resource(t, "LifecycleRule", lambda p: p.update(EventBusName="pipeline")), "LifecycleRule.EventBusName"),
    "lifecycle pattern without the event names": (
        lambda t: mutate_resource(t, "LifecycleRule", lambda p: p["EventPattern"]["detail"].pop("eventName")),
        "LifecycleRule.EventPattern"),
    "lifecycle queue without redrive": (
        lambda t: mutate_resource(t, "LifecycleQueue", lambda p: p.pop("RedrivePolicy")), "LifecycleQueue.RedrivePolicy"),
    "lifecycle event source unbounded": (
        lambda t: mutate_resource(t, "WorkerFunctionLifecycleQueue", lambda p: p.pop("ScalingConfig")),
        "WorkerFunctionLifecycleQueue.ScalingConfig"),
    "ListUsers on every pool": (
        lambda t: mutate_statement(t, "LookUpUsersInThePool", lambda s: s.update(Resource="*")), "WorkerRole.Policies"),
    "lifecycle events without their condition": (
        lambda t: mutate_statement(t, "PublishLifecycleEvents", lambda s: s.pop("Condition")), "WorkerRole.Policies"),
    "no USER_LOOKUP_RPS": (lambda t: mutate_resource(t, "WorkerFunction", lambda p: p["Environment"]["Variables"].pop(
        "USER_LOOKUP_RPS")), "WorkerFunction.Environment"),
    "UserConfirmed deny misses the worker": (
        lambda t: mutate_resource(t, "BusPolicyDenyForeignDetailType", lambda p: without_role("WorkerRole")(
            p["Statement"]["Condition"])), "BusPolicyDenyForeignDetailType.Statement"),
    "UserDeleted deny misses the reconciler": (
        lambda t: mutate_resource(t, "BusPolicyDenyForeignUserDeleted", lambda p: without_role("ReconcilerRole")(
            p["Statement"]["Condition"])), "BusPolicyDenyForeignUserDeleted.Statement"),
    "reconciler may call any mutation": (
        lambda t: mutate_resource(t, "ReconcilerStoreDeletePolicy", lambda p: p["PolicyDocument"]["Statement"][0].update(
            Resource="*")), "ReconcilerStoreDeletePolicy.PolicyDocument"),
    "reconciler may delete items with PutItem too": (
        lambda t: mutate_resource(t, "ReconcilerStoreDeletePolicy", lambda p: p["PolicyDocument"]["Statement"][0].update(
            Action=["dynamodb:UpdateItem", "dynamodb:PutItem"])), "ReconcilerStoreDeletePolicy.PolicyDocument", "options"),
    "trail in every region": (
        lambda t: mutate_resource(t, "Trail", lambda p: p.update(IsMultiRegionTrail=True)), "Trail.IsMultiRegionTrail", "options"),
    "trail of read events too": (
        lambda t: mutate_resource(t, "Trail", lambda p: p["EventSelectors"][0].update(ReadWriteType="All")),
        "Trail.EventSelectors", "options"),
    "trail bucket open to any trail": (
        lambda t: mutate_resource(t, "TrailBucketPolicy", lambda p: p["PolicyDocument"]["Statement"][1].pop("Condition")),
        "TrailBucketPolicy.PolicyDocument", "options"),
    "trail logs never expire": (
        lambda t: mutate_resource(t, "TrailBucket", lambda p: p.pop("LifecycleConfiguration")),
        "TrailBucket.LifecycleConfiguration", "options"),
    # The lifecycle's contracts in the registry and the archive.
    "archive without UserDeleted": (
        lambda t: mutate_resource(t, "UserConfirmedArchive", lambda p: p["EventPattern"]["Fn::Join"][1].__setitem__(
            -1, p["EventPattern"]["Fn::Join"][1][-1].replace(',"UserDeleted"', ""))),
        "UserConfirmedArchive.EventPattern"),
    "no UserDeleted schema": (lambda t: t["Resources"].pop(next(k for k in t["Resources"] if "UserDeletedSchema" in k)),
                              "UserDeletedSchema: only in the SAM template"),
    "ProfileDeleted schema of another contract": (
        lambda t: mutate_resource(t, "ProfileDeletedSchema", lambda p: p.update(Content=PROFILE_SCHEMA_FILE.read_text())),
        "ProfileDeletedSchema.Content"),
    "auditor resolves the endpoint although it is given": (
        lambda t: mutate_resource(t, "AuditorPolicy", lambda p: p["PolicyDocument"]["Statement"].insert(1, {
            "Sid": "ResolveGraphqlEndpoint", "Effect": "Allow", "Action": "appsync:GetGraphqlApi", "Resource": "x"})),
        "AuditorPolicy.PolicyDocument", "options"),
}


@pytest.mark.parametrize("case", sorted(DRIFTS))
def test_drift_is_caught(case):
    edit, expected, *which = DRIFTS[case]
    path, params = (OPTIONS, OPTIONS_SAM_PARAMS) if which == ["options"] else (MAIN, MAIN_SAM_PARAMS)
    template = load(path)
    assert not drift(Pair(load(path), params, substitute=path == OPTIONS))
    edit(template)
    found = drift(Pair(template, params, substitute=path == OPTIONS))
    assert any(expected in line for line in found), found


def test_only_documented_attributes_differ(pair):
    cdk_names = {k: construct_ids(pair.cdk_raw, set(pair.sam), ("Pipeline",)).get(k, k) for k in pair.cdk_raw["Resources"]}
    for name, sam in pair.sam.items():
        cdk = pair.cdk[name]
        assert "Condition" not in cdk, name
        # One DependsOn, the template's too: CloudTrail checks the bucket policy when the trail is created.
        if "DependsOn" in cdk or "DependsOn" in sam:
            assert name == "Trail" and sam["DependsOn"] == "TrailBucketPolicy", name
            assert [cdk_names[d] for d in cdk["DependsOn"]] == ["TrailBucketPolicy"]
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            if sam["Type"] in EXPLICIT_DELETE:
                assert cdk.get(attribute) == "Delete" and attribute not in sam, (name, attribute)
            else:
                assert cdk.get(attribute) == sam.get(attribute), (name, attribute)


def test_same_checkov_skips(pair):
    for name, sam in pair.sam.items():
        ids = lambda side: sorted(s["id"] for s in side.get("Metadata", {}).get("checkov", {}).get("skip", []))
        assert ids(pair.cdk[name]) == ids(sam), name
        for skip in pair.cdk[name].get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip["comment"].strip()) > 20, (name, skip)


def role_statements(resources: dict, role: str) -> list[dict]:
    policy, = resources[role]["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


@pytest.mark.parametrize("role", ["EmitterRole", "WorkerRole", "ReconcilerRole", "ReconcilerSchedulerRole"])
def test_iam_statements_are_the_same(pair, role):
    """Every statement (Sid, effect, actions, resources, conditions), and nothing else: no other
    policy resource, no managed policy but the auditor's (attached to nothing), the same trust."""
    sam, cdk = pair.sam[role]["Properties"], pair.cdk[role]["Properties"]
    assert role_statements(pair.cdk, role) == role_statements(pair.sam, role)
    assert cdk["AssumeRolePolicyDocument"] == sam["AssumeRolePolicyDocument"]
    assert [p["PolicyName"] for p in cdk["Policies"]] == [p["PolicyName"] for p in sam["Policies"]]
    assert "ManagedPolicyArns" not in cdk and "PermissionsBoundary" not in cdk
    # One policy resource: the reconciler's store check, on its role (it names the API, so in
    # Amplify it cannot be inline in the role, which lives in the pool's stack).
    # And, with lifecycleEvents, its delete grant, for the same reason.
    policies = [k for k, v in pair.cdk.items() if v["Type"] == "AWS::IAM::Policy"]
    assert sorted(policies) == ["ReconcilerStoreDeletePolicy", "ReconcilerStoreReadPolicy"]
    for policy in policies:
        assert pair.cdk[policy]["Properties"] == pair.sam[policy]["Properties"]
    managed = [k for k, v in pair.cdk.items() if v["Type"] == "AWS::IAM::ManagedPolicy"]
    assert managed == ["AuditorPolicy"]
    assert not {"Roles", "Users", "Groups"} & set(pair.cdk["AuditorPolicy"]["Properties"])
    for statement in role_statements(pair.cdk, role):
        for item in statement["Action"] + statement["Resource"]:
            assert "*" not in item, (role, item)


def test_reconciler_and_auditor_grants(pair):
    """The reconciler's whole policy and the auditor's, as the construct writes them: the stack's
    pool, bus and source, its own state parameter and log group; the auditor's GetGraphqlApi only
    where the API's endpoint is not given (the main template; the every-option one gives it)."""
    pool = "us-east-1_Options1" if pair.sam_params is OPTIONS_SAM_PARAMS else "${UserPoolId}"
    pool_arn = f"arn:${{AWS::Partition}}:cognito-idp:${{AWS::Region}}:${{AWS::AccountId}}:userpool/{pool}"
    emitter = {s["Sid"]: s for s in role_statements(pair.cdk, "EmitterRole")}
    user_deleted = {**emitter["PublishUserConfirmed"], "Sid": "AnnounceDeletedUsers", "Condition": {"StringEquals": {
        **emitter["PublishUserConfirmed"]["Condition"]["StringEquals"], "events:detail-type": "UserDeleted"}}}
    assert role_statements(pair.cdk, "ReconcilerRole") == [
        {"Sid": "ListPoolUsers", "Effect": "Allow", "Action": ["cognito-idp:ListUsers"], "Resource": [pool_arn]},
        emitter["PublishUserConfirmed"],
        user_deleted,  # lifecycleEvents, on in both templates
        {"Sid": "KeepReconcileState", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:PutParameter"],
         "Resource": ["arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ReconcileWatermarkParameter}"]},
        {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": ["${ReconcilerLogGroup.Arn}"]},
    ]
    assert role_statements(pair.cdk, "ReconcilerSchedulerRole") == [
        {"Sid": "InvokeReconciler", "Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": ["${ReconcilerFunction.Arn}"]}]
    api = f"arn:${{AWS::Partition}}:appsync:${{AWS::Region}}:${{AWS::AccountId}}:apis/{pair.api_id}"
    lookup = "AppSyncGraphqlUrl" not in pair.sam_params or not pair.sam_params["AppSyncGraphqlUrl"]
    if pair.sam_params["ProfileStore"] == "dynamodb":  # the every-option template
        table = ("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/"
                 + pair.sam_params["ProfileTableName"])
        store = [{"Sid": "ScanProfileItemsOnly", "Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": [table]}]
        read = [{"Sid": "ReadProfileItemsOnly", "Effect": "Allow", "Action": ["dynamodb:BatchGetItem"],
                 "Resource": [table]}]
        delete = [{"Sid": "SoftDeleteProfileItemsOnly", "Effect": "Allow", "Action": ["dynamodb:UpdateItem"],
                   "Resource": [table]}, store[0]]
    else:
        resolve = [{"Sid": "ResolveGraphqlEndpoint", "Effect": "Allow", "Action": ["appsync:GetGraphqlApi"],
                    "Resource": [api]}] if lookup else []
        store = [{"Sid": "ListProfilesOnly", "Effect": "Allow", "Action": ["appsync:GraphQL"],
                  "Resource": [f"{api}/types/Query/fields/listUserProfiles"]}, *resolve]
        read = [{"Sid": "ReadProfilesOnly", "Effect": "Allow", "Action": ["appsync:GraphQL"],
                 "Resource": [f"{api}/types/Query/fields/getUserProfile"]}, *resolve]
        delete = [{"Sid": "DeleteUserProfilesOnly", "Effect": "Allow", "Action": ["appsync:GraphQL"],
                   "Resource": [f"{api}/types/Mutation/fields/deleteUserProfile"]}, store[0]]
    # The orphan sweep's whole-store read is the auditor's own statement (listUserProfiles, or
    # Scan on the table), and nothing else is added for it: the role's inline statements are the
    # pass's, GetGraphqlApi stays the store read's.
    assert pair.cdk["ReconcilerStoreReadPolicy"]["Properties"]["PolicyDocument"]["Statement"] == read
    assert pair.cdk["ReconcilerStoreDeletePolicy"]["Properties"]["PolicyDocument"]["Statement"] == delete
    assert pair.cdk["AuditorPolicy"]["Properties"]["PolicyDocument"]["Statement"] == [
        *store,
        {"Sid": "ListUsers", "Effect": "Allow", "Action": ["cognito-idp:DescribeUserPool", "cognito-idp:ListUsers"],
         "Resource": [pool_arn]},
    ]


def test_reconciler_settings_are_the_same(pair):
    """Function (one at a time, 900 s), async-invoke settings, schedule, state parameter."""
    for name in ("ReconcilerInvokeConfig", "ReconcilerSchedule", "ReconcilerOrphanSweepSchedule",
                 "ReconcileWatermarkParameter", "ReconcilerLogGroup"):
        assert pair.cdk[name]["Properties"] == pair.sam[name]["Properties"], name
    function = pair.cdk["ReconcilerFunction"]["Properties"]
    # The orphan sweep (lifecycleEvents, on in both): the pass's target with the sweep's input.
    sweep = pair.cdk["ReconcilerOrphanSweepSchedule"]["Properties"]
    assert sweep["Target"] == {**pair.cdk["ReconcilerSchedule"]["Properties"]["Target"], "Input": '{"orphans": true}'}
    assert function["Environment"]["Variables"]["USER_LOOKUP_RPS"] == \
        pair.cdk["WorkerFunction"]["Properties"]["Environment"]["Variables"]["USER_LOOKUP_RPS"]
    assert (function["Timeout"], function["ReservedConcurrentExecutions"], function["Role"]) == (
        "900", "1", "${ReconcilerRole.Arn}")
    variables = function["Environment"]["Variables"]
    schedule = pair.cdk["ReconcilerSchedule"]["Properties"]
    if pair.sam_params is OPTIONS_SAM_PARAMS:
        assert (schedule["ScheduleExpression"], schedule["State"]) == ("cron(0 3 * * ? *)", "DISABLED")
        assert (sweep["ScheduleExpression"], sweep["State"]) == ("cron(0 4 ? * SUN *)", "DISABLED")
        assert (variables["RECONCILE_OVERLAP_SECONDS"], variables["RECONCILE_STATUSES"]) == (
            "172800", "CONFIRMED,EXTERNAL_PROVIDER,RESET_REQUIRED")
    else:
        assert (schedule["ScheduleExpression"], schedule["State"]) == ("${ReconcileSchedule}", "${ReconcileScheduleState}")
        assert (sweep["ScheduleExpression"], sweep["State"]) == ("${OrphanSweepSchedule}", "${OrphanSweepScheduleState}")
        assert variables["RECONCILE_STATUSES"] == "${ReconcileStatuses}"


def test_strict_mode_grants_admin_get_user_on_the_pool_only(pair):
    """VerifyUser: none in the main template (the default), cognito in the every-option one."""
    cognito = pair.sam_params["VerifyUser"] == "cognito"
    assert cognito == (pair.sam_params is OPTIONS_SAM_PARAMS)
    worker = {s["Sid"]: s for s in role_statements(pair.cdk, "WorkerRole")}
    variables = pair.cdk["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["VERIFY_USER"] == ("cognito" if cognito else "none")
    assert variables["EVENT_SOURCE"] == ("example.signup" if cognito else "${EventSource}")
    pool = "us-east-1_Options1" if cognito else "${UserPoolId}"
    assert variables["USER_POOL_ID"] == pool
    if cognito:
        assert worker["CheckUsersInThePool"] == {
            "Sid": "CheckUsersInThePool", "Effect": "Allow", "Action": ["cognito-idp:AdminGetUser"],
            "Resource": [f"arn:${{AWS::Partition}}:cognito-idp:${{AWS::Region}}:${{AWS::AccountId}}:userpool/{pool}"],
        }
    else:
        assert "CheckUsersInThePool" not in worker
    # Besides it, only the lifecycle's ListUsers (the check of each event by sub), on the same pool.
    others = [s for s in role_statements(pair.cdk, "WorkerRole") if "cognito-idp" in json.dumps(s) and s["Sid"] != "CheckUsersInThePool"]
    assert others == [{"Sid": "LookUpUsersInThePool", "Effect": "Allow", "Action": ["cognito-idp:ListUsers"],
                       "Resource": [f"arn:${{AWS::Partition}}:cognito-idp:${{AWS::Region}}:${{AWS::AccountId}}:userpool/{pool}"]}]


def test_queue_policies_deny_every_other_sender(pair):
    """The queue policies' Deny: the worker queue lets the emitter's role send, the worker DLQ the
    worker's, the rule DLQ no role; the back-fill role (every-option template) all three."""
    backfill = [pair.sam_params["BackfillPublisherArn"]] if "BackfillPublisherArn" in pair.sam_params else []
    allowed = {
        "WorkerQueuePolicy": ("WorkerQueue", ["${EmitterRole.Arn}"]),
        "WorkerDeadLetterQueuePolicy": ("WorkerDeadLetterQueue", ["${WorkerRole.Arn}"]),
        "RuleDeadLetterQueuePolicy": ("RuleDeadLetterQueue", []),
        "LifecycleQueuePolicy": ("LifecycleQueue", []),
    }
    for policy, (queue, roles) in allowed.items():
        deny, = [s for s in pair.cdk[policy]["Properties"]["PolicyDocument"]["Statement"]
                 if s.get("Sid") == "OnlyThePipelinesRolesSend"]
        condition = {"Null": {"aws:PrincipalArn": "false"}}
        if roles + backfill:
            condition["ArnNotEquals"] = {"aws:PrincipalArn": roles + backfill}
        assert deny == {"Sid": "OnlyThePipelinesRolesSend", "Effect": "Deny", "Principal": "*",
                        "Action": ["sqs:SendMessage"], "Resource": [f"${{{queue}.Arn}}"], "Condition": condition}, policy


def test_worker_grant_is_the_one_mutation_field_or_the_one_table(pair):
    """The store grants: creating (the one mutation field, or PutItem), and with lifecycleEvents
    reading and deleting (getUserProfile and deleteUserProfile, or GetItem and UpdateItem)."""
    statements = role_statements(pair.cdk, "WorkerRole")
    if pair.sam_params["ProfileStore"] == "dynamodb":
        table = ["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/" + pair.sam_params["ProfileTableName"]]
        store = [s for s in statements if "dynamodb" in json.dumps(s)]
        assert store == [
            {"Sid": "PutProfileItemsOnly", "Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": table},
            {"Sid": "ReadAndSoftDeleteProfileItemsOnly", "Effect": "Allow",
             "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Resource": table},
        ]
        assert not [s for s in statements if "appsync" in json.dumps(s)], "the API is unused"
        return
    api = f"arn:${{AWS::Partition}}:appsync:${{AWS::Region}}:${{AWS::AccountId}}:apis/{pair.api_id}"
    grants = [s for s in statements if s["Action"] == ["appsync:GraphQL"]]
    assert grants == [
        {"Sid": "CreateUserProfileOnly", "Effect": "Allow", "Action": ["appsync:GraphQL"],
         "Resource": [f"{api}/types/Mutation/fields/createUserProfile"]},
        {"Sid": "ReadAndDeleteUserProfilesOnly", "Effect": "Allow", "Action": ["appsync:GraphQL"],
         "Resource": sorted([f"{api}/types/Mutation/fields/deleteUserProfile", f"{api}/types/Query/fields/getUserProfile"])},
    ]


@pytest.mark.parametrize("queue", ["WorkerQueue", "WorkerDeadLetterQueue", "RuleDeadLetterQueue", "LifecycleQueue"])
def test_queue_settings_are_the_same(pair, queue):
    keys = ("QueueName", "VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
            "SqsManagedSseEnabled", "RedrivePolicy", "KmsMasterKeyId")
    sam, cdk = pair.sam[queue]["Properties"], pair.cdk[queue]["Properties"]
    assert {k: cdk.get(k) for k in keys} == {k: sam.get(k) for k in keys}
    assert cdk["SqsManagedSseEnabled"] == "true"
    if queue in ("WorkerQueue", "LifecycleQueue"):
        assert cdk["RedrivePolicy"]["deadLetterTargetArn"] == "${WorkerDeadLetterQueue.Arn}"
        assert cdk["RedrivePolicy"]["maxReceiveCount"] == sam["RedrivePolicy"]["maxReceiveCount"]


def test_queue_and_bus_policies_are_the_same(pair):
    for type_ in ("AWS::SQS::QueuePolicy", "AWS::Events::EventBusPolicy"):
        sam, cdk = pair.of_type(pair.sam, type_), pair.of_type(pair.cdk, type_)
        assert {k: v["Properties"] for k, v in cdk.items()} == {k: v["Properties"] for k, v in sam.items()}


def test_rule_archive_and_schema_are_the_same(pair):
    rule = pair.cdk["UserConfirmedRule"]["Properties"]
    assert rule == pair.sam["UserConfirmedRule"]["Properties"]
    source = "${EventSource}" if "${" in json.dumps(rule["EventPattern"]) else "example.signup"
    assert rule["EventPattern"] == {"source": [source], "detail-type": ["UserConfirmed"]}
    target, = rule["Targets"]
    assert target["Arn"] == "${WorkerQueue.Arn}" and target["DeadLetterConfig"] == {"Arn": "${RuleDeadLetterQueue.Arn}"}
    lifecycle = pair.cdk["LifecycleRule"]["Properties"]
    assert lifecycle == pair.sam["LifecycleRule"]["Properties"]
    assert lifecycle["EventBusName"] == "default"
    assert lifecycle["EventPattern"] == {
        "source": ["aws.cognito-idp"], "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["cognito-idp.amazonaws.com"],
                   "eventName": ["AdminDeleteUser", "DeleteUser", "AdminCreateUser", "AdminSetUserPassword"]}}
    target, = lifecycle["Targets"]
    assert target["Arn"] == "${LifecycleQueue.Arn}" and target["DeadLetterConfig"] == {"Arn": "${RuleDeadLetterQueue.Arn}"}
    archive = pair.cdk["UserConfirmedArchive"]["Properties"]
    assert archive == pair.sam["UserConfirmedArchive"]["Properties"]
    # The worker rule's pattern with UserDeleted beside UserConfirmed (a replay back-fills both).
    assert archive["EventPattern"] == {**rule["EventPattern"], "detail-type": ["UserConfirmed", "UserDeleted"]}
    # moto json.loads the archive's pattern: it must stay a string in the construct's template.
    raw, = [v for k, v in pair.cdk_raw["Resources"].items() if v["Type"] == "AWS::Events::Archive"]
    pattern = raw["Properties"]["EventPattern"]
    assert isinstance(pattern, str) or set(pattern) <= {"Fn::Join", "Fn::Sub"}, pattern
    schemas = {"UserConfirmedSchema": SCHEMA_FILE, "ProfileCreatedSchema": PROFILE_SCHEMA_FILE,
               "UserDeletedSchema": USER_DELETED_SCHEMA_FILE, "ProfileDeletedSchema": PROFILE_DELETED_SCHEMA_FILE}
    if "UserConfirmedSchema" in pair.sam:
        # The main template: registry, ProfileCreated and the lifecycle on, so all four.
        for name, path in schemas.items():
            schema = pair.cdk[name]["Properties"]
            assert schema == pair.sam[name]["Properties"], name
            assert schema["Content"] == path.read_text(encoding="utf-8"), name
            assert schema["SchemaName"] == "${EventSource}@" + name.removesuffix("Schema"), name
    else:  # the every-option template: no registry (selftest.ts covers the other combinations)
        assert not set(schemas) & (set(pair.cdk) | set(pair.sam))


@pytest.mark.parametrize("function", ["EmitterFunction", "WorkerFunction", "ReconcilerFunction"])
def test_function_settings_are_the_same(pair, function):
    keys = ("Runtime", "Architectures", "Handler", "Timeout", "MemorySize", "Role", "FunctionName",
            "LoggingConfig", "Description")
    sam, cdk = pair.sam[function]["Properties"], pair.cdk[function]["Properties"]
    assert {k: cdk.get(k) for k in keys} == {k: sam.get(k) for k in keys}
    assert list(cdk["Environment"]["Variables"]) == list(sam["Environment"]["Variables"])
    assert cdk["Environment"] == sam["Environment"]
    assert (cdk["Runtime"], cdk["Architectures"], cdk["Handler"]) == ("provided.al2023", ["arm64"], "bootstrap")


def test_event_source_permission_and_alarms_are_the_same(pair):
    assert pair.cdk["WorkerFunctionWorkerQueue"]["Properties"] == pair.sam["WorkerFunctionWorkerQueue"]["Properties"]
    lifecycle = pair.cdk["WorkerFunctionLifecycleQueue"]["Properties"]
    assert lifecycle == pair.sam["WorkerFunctionLifecycleQueue"]["Properties"]
    assert (lifecycle["EventSourceArn"], lifecycle["BatchSize"], lifecycle["ScalingConfig"]) == (
        "${LifecycleQueue.Arn}", "10", {"MaximumConcurrency": "2"})
    assert pair.cdk["EmitterInvokeFromUserPool"]["Properties"] == pair.sam["EmitterInvokeFromUserPool"]["Properties"]
    sam_alarms = {k: v["Properties"] for k, v in pair.of_type(pair.sam, "AWS::CloudWatch::Alarm").items()}
    assert {k: v["Properties"] for k, v in pair.of_type(pair.cdk, "AWS::CloudWatch::Alarm").items()} == sam_alarms


def test_dashboard_is_the_same(pair):
    """Same name, same graphs, metric for metric, filtered to the same Stack value and queues."""
    sam, cdk = pair.sam["Dashboard"]["Properties"], pair.cdk["Dashboard"]["Properties"]
    assert cdk == sam
    prefix = pair.sam_params.get("NamePrefix", "${NamePrefix}") if pair.sam_params is OPTIONS_SAM_PARAMS else "${NamePrefix}"
    assert cdk["DashboardName"] == prefix
    rows = [row for w in cdk["DashboardBody"]["widgets"] for row in w["properties"].get("metrics", [])
            if isinstance(row[0], str)]
    assert rows
    for row in rows:
        assert ("Stack" in row and row[row.index("Stack") + 1] == prefix) or (
            row[2] == "QueueName" and row[3] in ("${WorkerQueue.QueueName}", "${WorkerDeadLetterQueue.QueueName}",
                                                 "${RuleDeadLetterQueue.QueueName}", "${LifecycleQueue.QueueName}")), row
    assert any(row[3] == "${LifecycleQueue.QueueName}" for row in rows if row[2] == "QueueName")


def test_profile_created_grant_and_environment(pair):
    """publishProfileCreated: true in the main template (the default), false in the every-option one."""
    publish = pair.sam_params["PublishProfileCreated"] == "true"
    worker = {s["Sid"]: s for s in role_statements(pair.cdk, "WorkerRole")}
    emitter = {s["Sid"]: s for s in role_statements(pair.cdk, "EmitterRole")}
    variables = pair.cdk["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    emitter_variables = pair.cdk["EmitterFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["PROFILE_CREATED_EVENTS"] == ("true" if publish else "false")
    assert variables["STACK_NAME"] == emitter_variables["STACK_NAME"] == pair.cdk["Dashboard"]["Properties"]["DashboardName"]
    # The bus of ProfileCreated and of the lifecycle's events, set whatever is published.
    assert variables["EVENT_BUS_NAME"] == emitter_variables["EVENT_BUS_NAME"]
    if publish:
        source = emitter["PublishUserConfirmed"]["Condition"]["StringEquals"]["events:source"]
        assert worker["AnnounceProfiles"] == {
            "Sid": "AnnounceProfiles", "Effect": "Allow", "Action": ["events:PutEvents"],
            "Resource": emitter["PublishUserConfirmed"]["Resource"],
            "Condition": {"StringEquals": {"events:detail-type": "ProfileCreated", "events:source": source}},
        }
    else:
        assert "AnnounceProfiles" not in worker
        # Only the lifecycle's events (lifecycleEvents is on in both templates).
        assert [s["Sid"] for s in worker.values() if "events:" in json.dumps(s)] == ["PublishLifecycleEvents"]
    # Present either way: only the worker's role may put ProfileCreated under the source.
    deny = pair.cdk["BusPolicyDenyForeignProfileCreated"]["Properties"]["Statement"]
    assert deny["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": ["${WorkerRole.Arn}"]}


def test_trail_is_the_same(pair):
    """createTrail (the every-option template): the trail, its bucket and bucket policy, as the
    template's; none in the main template (the default)."""
    names = {"Trail", "TrailBucket", "TrailBucketPolicy"}
    if pair.sam_params["CreateTrail"] == "false":
        assert not names & set(pair.cdk) and not names & set(pair.sam)
        return
    for name in names:
        assert pair.cdk[name]["Properties"] == pair.sam[name]["Properties"], name
    trail = pair.cdk["Trail"]["Properties"]
    assert (trail["TrailName"], trail["IsMultiRegionTrail"], trail["EnableLogFileValidation"], trail["EventSelectors"]) == (
        "uc-options-trail", "false", "true", [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": "true"}])
    assert trail["S3BucketName"] == "${TrailBucket}"
    bucket = pair.cdk["TrailBucket"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    statements = pair.cdk["TrailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    arn = "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/uc-options-trail"
    assert [s["Condition"]["StringEquals"]["aws:SourceArn"] for s in statements if s["Effect"] == "Allow"] == [arn, arn]


def test_outputs_are_the_same(pair):
    expected = {k: v for k, v in pair.sam_outputs.items() if k != "UserPoolClientId"}  # trial pool only
    assert list(pair.cdk_outputs) == list(expected)
    assert pair.cdk_outputs == expected


# --------------------------------------------------------------------------- parameters


def test_standalone_parameters_are_the_sam_templates():
    sam = local_stack.load_template(local_stack.DEFAULT_TEMPLATE)["Parameters"]
    cdk = load(MAIN)["Parameters"]
    assert set(sam) - set(cdk) == SAM_ONLY_PARAMETERS
    assert set(cdk) - set(sam) == CDK_ONLY_PARAMETERS
    keys = ("Type", "Default", "AllowedValues", "AllowedPattern", "MinValue", "MaxValue", "MinLength",
            "MaxLength", "ConstraintDescription")
    strings = lambda spec: {k: json.dumps(spec[k] if not isinstance(spec[k], list) else [str(x) for x in spec[k]])
                            if not isinstance(spec[k], (str, int, float)) else str(spec[k]) for k in keys if k in spec}
    for name in set(sam) & set(cdk):
        if name == "AppSyncApiId":
            # Optional in the SAM template (its Rules require it with ProfileStore=appsync, the
            # only store the construct has): required there.
            assert sam[name]["AllowedPattern"] == "^$|" + cdk[name]["AllowedPattern"]
            assert (sam[name]["Default"], cdk[name]["MinLength"]) == ("", 1)
            continue
        if name == "UserPoolId":
            # No trial pool in the construct's stack: the pool id is required.
            assert cdk[name]["AllowedPattern"] == sam[name]["AllowedPattern"].removeprefix("^$|")
            assert "Default" not in cdk[name]
            continue
        assert strings(cdk[name]) == strings(sam[name]), name
        assert cdk[name]["Description"].strip(), name


def test_props_bounds_are_the_templates():
    """The construct refuses a literal prop outside its SAM parameter's MinValue/MaxValue, no more
    and no less (infra/cdk/src/props.ts, ``range(...)``; a Duration prop is checked in seconds
    against the parameter named ...Seconds). E.g. reconcileListUsersRate up to 30, ListUsers'
    UserList quota, like ReconcileListUsersRate."""
    sam = local_stack.load_template(local_stack.DEFAULT_TEMPLATE)["Parameters"]
    source = (CDK / "src" / "props.ts").read_text()
    calls = re.findall(r'range\("([^"]+)", p\.(\w+)(\.toSeconds\(\))?, (\d+), (\d+)\);', source)
    assert len(calls) == source.count("  range("), "a range() call this test does not read"
    assert len(calls) >= 16
    for label, prop, seconds, low, high in calls:
        assert label == prop + (" (s)" if seconds else ""), label
        name = prop[0].upper() + prop[1:] + ("Seconds" if seconds else "")
        assert (int(low), int(high)) == (sam[name]["MinValue"], sam[name]["MaxValue"]), name


# --------------------------------------------------------------------------- Amplify stand-in


def standin() -> tuple[dict, dict[str, dict]]:
    root, = SYNTH.glob("amplify-standin-*.template.json")
    nested = {}
    for path in SYNTH.glob("amplifystandin*.nested.template.json"):
        group = re.fullmatch(r"amplifystandinsandbox\d+(\w+?)[0-9A-F]{8}\.nested\.template\.json", path.name).group(1)
        nested[group] = json.loads(path.read_text())
    return json.loads(root.read_text()), nested


def edges(resources: dict) -> dict[str, set[str]]:
    return {k: (local_stack.references(v.get("Properties", {}))
                | set([v["DependsOn"]] if isinstance(v.get("DependsOn"), str) else v.get("DependsOn", []))) & set(resources)
            for k, v in resources.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_standin_nested_stacks_depend_one_way():
    root, nested = standin()
    assert set(nested) == {"auth", "data", "UserConfirmed"}
    stacks = {k: v for k, v in root["Resources"].items() if v["Type"] == "AWS::CloudFormation::Stack"}
    group = {k: re.match(r"(auth|data|UserConfirmed)NestedStack", k).group(1) for k in stacks}
    graph = {group[k]: {group[d] for d in deps} for k, deps in edges(stacks).items()}
    assert graph == {"auth": set(), "data": {"auth"}, "UserConfirmed": {"auth", "data"}}
    assert cycle(graph) is None
    for name, template in {"root": root, **nested}.items():
        assert cycle(edges(template["Resources"])) is None, name


def test_standin_trigger_is_attached_in_the_pools_own_stack():
    _, nested = standin()
    auth = nested["auth"]["Resources"]
    pool, = [v for v in auth.values() if v["Type"] == "AWS::Cognito::UserPool"]
    emitter, = [k for k, v in auth.items() if v["Type"] == "AWS::Lambda::Function"]
    assert pool["Properties"]["LambdaConfig"] == {"PostConfirmation": {"Fn::GetAtt": [emitter, "Arn"]}}
    permission, = [v["Properties"] for v in auth.values() if v["Type"] == "AWS::Lambda::Permission"]
    pool_id, = [k for k, v in auth.items() if v["Type"] == "AWS::Cognito::UserPool"]
    assert permission["SourceArn"] == {"Fn::GetAtt": [pool_id, "Arn"]}
    assert permission["FunctionName"] == {"Fn::GetAtt": [emitter, "Arn"]}


def test_standin_places_the_emitter_side_with_the_pool_and_the_worker_side_in_its_stack():
    _, nested = standin()
    main = load(MAIN)["Resources"]
    sam_names = {re.fullmatch(r"Pipeline(\w+?)[0-9A-F]{8}", k).group(1) for k in main}
    auth = construct_ids(nested["auth"], sam_names, ("PipelinePublisher",))
    custom = construct_ids(nested["UserConfirmed"], sam_names, ("Pipeline",))
    # The worker DLQ's policy names the worker's role: in auth it would make auth refer to UserConfirmed.
    # So does the ProfileCreated bus policy; the dashboard refers to the queues (this stack -> auth).
    # The reconciler's role is named by the bus policies (auth), and so are what its policy names
    # (log group, state parameter); its function, schedule and alarms refer to them from here. The
    # auditor's policy names the API (data, which refers to auth): here too, and so does the
    # reconciler's store-read policy (attached to its role by name).
    # The bus policies that name the worker's role (UserConfirmed, ProfileCreated, ProfileDeleted,
    # UserDeleted) and the worker's second event source are here too; the lifecycle rule and queue
    # go to auth with the rule DLQ, whose policy names the rule.
    worker_side = {"WorkerLogGroup", "WorkerRole", "WorkerFunction", "WorkerFunctionWorkerQueue", "WorkerPermanentFailuresAlarm",
                   "WorkerDeadLetterQueuePolicy", "BusPolicyDenyForeignProfileCreated", "Dashboard",
                   "BusPolicyDenyForeignDetailType", "BusPolicyDenyForeignProfileDeleted", "BusPolicyDenyForeignUserDeleted",
                   "WorkerFunctionLifecycleQueue", "ReconcilerStoreDeletePolicy",
                   "ReconcilerFunction", "ReconcilerInvokeConfig", "ReconcilerSchedulerRole", "ReconcilerSchedule",
                   "ReconcilerOrphanSweepSchedule", "ReconcilerFailedAlarm", "ReconcilerBehindAlarm", "AuditorPolicy", "ReconcilerStoreReadPolicy"}
    assert set(custom.values()) == worker_side
    assert set(auth.values()) == sam_names - worker_side
    assert {"LifecycleRule", "LifecycleQueue", "LifecycleQueuePolicy", "LifecycleQueueAgeAlarm"} <= set(auth.values())
    assert len(auth) + len(custom) == len(main)


def passed_from(root: dict, parameter: str) -> dict:
    """What the root stack passes to a nested stack's parameter."""
    return next(v["Properties"]["Parameters"][parameter] for v in root["Resources"].values()
                if parameter in v["Properties"].get("Parameters", {}))


def test_standin_worker_uses_the_apis_endpoint_and_no_lookup():
    root, nested = standin()
    custom = nested["UserConfirmed"]["Resources"]
    worker, = [v["Properties"] for k, v in custom.items() if re.fullmatch(r"PipelineWorkerFunction[0-9A-F]{8}", k)]
    variables = worker["Environment"]["Variables"]
    assert set(variables) == {"APPSYNC_GRAPHQL_URL", "DLQ_URL", "CONCURRENCY", "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER",
                              "STACK_NAME", "PROFILE_CREATED_EVENTS", "EVENT_BUS_NAME", "RECONCILE_STATUSES",
                              "USER_LOOKUP_RPS"}
    assert passed_from(root, variables["APPSYNC_GRAPHQL_URL"]["Ref"])["Fn::GetAtt"][1].endswith("GraphQLUrl")
    role, = [v["Properties"] for k, v in custom.items() if re.fullmatch(r"PipelineWorkerRole[0-9A-F]{8}", k)]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == [
        "CreateUserProfileOnly", "ConsumeWorkerQueue", "CheckUsersInThePool", "DeadLetterPermanentFailures", "AnnounceProfiles",
        "ConsumeLifecycleQueue", "LookUpUsersInThePool", "ReadAndDeleteUserProfilesOnly", "PublishLifecycleEvents",
        "WriteOwnLogs"]


def test_standin_worker_names_the_pool_from_the_auth_stack():
    """The stand-in sets verifyUser: "cognito": USER_POOL_ID and the AdminGetUser grant are the
    auth stack's pool, passed in as parameters (UserConfirmed -> auth, the existing direction)."""
    root, nested = standin()
    auth = nested["auth"]["Resources"]
    pool_id, = [k for k, v in auth.items() if v["Type"] == "AWS::Cognito::UserPool"]
    custom = nested["UserConfirmed"]["Resources"]
    worker, = [v["Properties"] for k, v in custom.items() if re.fullmatch(r"PipelineWorkerFunction[0-9A-F]{8}", k)]
    variables = worker["Environment"]["Variables"]
    assert (variables["VERIFY_USER"], variables["EVENT_SOURCE"]) == ("cognito", "userconfirmed.cognito")
    outputs = nested["auth"]["Outputs"]

    def auth_output(parameter: str):
        stack_resource, attribute = passed_from(root, parameter)["Fn::GetAtt"]
        assert re.match(r"authNestedStack", stack_resource), stack_resource
        return outputs[attribute.removeprefix("Outputs.")]["Value"]

    assert auth_output(variables["USER_POOL_ID"]["Ref"]) == {"Ref": pool_id}
    role, = [v["Properties"] for k, v in custom.items() if re.fullmatch(r"PipelineWorkerRole[0-9A-F]{8}", k)]
    grant, = [s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "CheckUsersInThePool"]
    assert grant["Action"] == "cognito-idp:AdminGetUser"
    assert auth_output(grant["Resource"]["Ref"]) == {"Fn::GetAtt": [pool_id, "Arn"]}
    # The lifecycle's ListUsers is on the same pool, and its queue is auth's, passed in the same way.
    lookup, = [s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "LookUpUsersInThePool"]
    assert lookup["Action"] == "cognito-idp:ListUsers"
    assert auth_output(lookup["Resource"]["Ref"]) == {"Fn::GetAtt": [pool_id, "Arn"]}
    queue, = [k for k, v in auth.items() if v["Type"] == "AWS::SQS::Queue" and "LifecycleQueue" in k]
    consume, = [s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "ConsumeLifecycleQueue"]
    assert auth_output(consume["Resource"]["Ref"]) == {"Fn::GetAtt": [queue, "Arn"]}
    # The bus the worker announces profiles on is auth's, passed in as parameters too.
    bus, = [k for k, v in auth.items() if v["Type"] == "AWS::Events::EventBus"]
    assert auth_output(variables["EVENT_BUS_NAME"]["Ref"]) == {"Fn::GetAtt": [bus, "Name"]}
    announce, = [s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s["Sid"] == "AnnounceProfiles"]
    assert auth_output(announce["Resource"]["Ref"]) == {"Fn::GetAtt": [bus, "Arn"]}
    # Nothing in auth refers to the worker side.
    assert not re.search(r"PipelineWorker(Role|Function|LogGroup)", json.dumps(nested["auth"]))


def test_standin_reconciler_spans_the_stacks_one_way():
    """The bus policies in auth name the reconciler's role, which is in auth with its log group
    and state parameter; the function in UserConfirmed takes the role, bus, pool and parameter as
    parameters from auth, and nothing in auth refers to the function, its schedule or the auditor."""
    root, nested = standin()
    auth, custom = nested["auth"]["Resources"], nested["UserConfirmed"]["Resources"]
    role_id, = [k for k in auth if re.fullmatch(r"PipelinePublisherReconcilerRole[0-9A-F]{8}", k)]
    for policy in [v for v in auth.values() if v["Type"] == "AWS::Events::EventBusPolicy"]:
        allowed = policy["Properties"]["Statement"]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        assert {"Fn::GetAtt": [role_id, "Arn"]} in allowed, allowed
    reconciler, = [v["Properties"] for k, v in custom.items() if re.fullmatch(r"PipelineReconcilerFunction[0-9A-F]{8}", k)]
    outputs = nested["auth"]["Outputs"]

    def auth_output(parameter: str):
        stack_resource, attribute = passed_from(root, parameter)["Fn::GetAtt"]
        assert re.match(r"authNestedStack", stack_resource), stack_resource
        return outputs[attribute.removeprefix("Outputs.")]["Value"]

    assert auth_output(reconciler["Role"]["Ref"]) == {"Fn::GetAtt": [role_id, "Arn"]}
    variables = reconciler["Environment"]["Variables"]
    parameter, = [k for k, v in auth.items() if v["Type"] == "AWS::SSM::Parameter"]
    assert auth_output(variables["RECONCILE_WATERMARK_PARAMETER"]["Ref"]) == {"Ref": parameter}
    assert "DependsOn" not in json.dumps(root), "the stacks are ordered by their references alone"
    assert not re.search(r"Pipeline(Reconciler(Function|SchedulerRole|Schedule|InvokeConfig|StoreReadPolicy)|AuditorPolicy)",
                         json.dumps(nested["auth"]))
    assert {v["Type"] for k, v in custom.items() if "Reconciler" in k} == {
        "AWS::Lambda::Function", "AWS::Lambda::EventInvokeConfig", "AWS::IAM::Role", "AWS::Scheduler::Schedule",
        "AWS::CloudWatch::Alarm", "AWS::IAM::Policy"}


def test_standin_reconciler_defaults_are_the_sam_templates():
    """The stand-in sets none of the reconciler's props: the construct's defaults (overlap 1 h,
    behind alarm 3 days, ...) are the SAM parameters' defaults."""
    _, nested = standin()
    custom = nested["UserConfirmed"]["Resources"]
    sam = local_stack.load_template(local_stack.DEFAULT_TEMPLATE)["Parameters"]
    default = lambda name: str(sam[name]["Default"])
    reconciler, = [v["Properties"] for k, v in custom.items() if re.fullmatch(r"PipelineReconcilerFunction[0-9A-F]{8}", k)]
    variables = reconciler["Environment"]["Variables"]
    assert {k: variables[k] for k in ("RECONCILE_OVERLAP_SECONDS", "RECONCILE_PUBLISH_RATE", "LIST_USERS_RPS",
                                      "RECONCILE_STATUSES")} == {
        "RECONCILE_OVERLAP_SECONDS": default("ReconcileOverlapSeconds"),
        "RECONCILE_PUBLISH_RATE": default("ReconcilePublishRate"),
        "LIST_USERS_RPS": default("ReconcileListUsersRate"),
        "RECONCILE_STATUSES": default("ReconcileStatuses"),
    }
    assert variables["RECONCILE_OVERLAP_SECONDS"] == "3600"
    behind, = [v["Properties"] for v in custom.values()
               if v["Type"] == "AWS::CloudWatch::Alarm" and "OldestUnreconciledChange" == v["Properties"].get("MetricName")]
    assert str(behind["Threshold"]) == default("ReconcileBehindAlarmSeconds") == "259200"
    schedules = [v["Properties"] for v in custom.values() if v["Type"] == "AWS::Scheduler::Schedule"]
    assert len(schedules) == 2, schedules
    by_input = {s["Target"].get("Input"): s for s in schedules}
    assert set(by_input) == {None, '{"orphans": true}'}
    schedule, sweep = by_input[None], by_input['{"orphans": true}']
    assert (schedule["ScheduleExpression"], schedule["State"]) == (default("ReconcileSchedule"), default("ReconcileScheduleState"))
    assert (sweep["ScheduleExpression"], sweep["State"]) == (default("OrphanSweepSchedule"), default("OrphanSweepScheduleState"))
    assert variables["USER_LOOKUP_RPS"] == default("WorkerUserLookupRate")


def test_standin_default_name_prefix_is_valid_and_applied():
    _, nested = standin()
    bus, = [v["Properties"]["Name"] for v in nested["auth"]["Resources"].values() if v["Type"] == "AWS::Events::EventBus"]
    prefix = bus.removesuffix("-events")
    assert re.fullmatch(r"uc-[0-9a-f]{8}", prefix), prefix
    functions = sorted(v["Properties"]["FunctionName"] for v in nested["UserConfirmed"]["Resources"].values()
                       if v["Type"] == "AWS::Lambda::Function")
    assert functions == [f"{prefix}-reconciler", f"{prefix}-worker"]
