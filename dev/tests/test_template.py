"""Tests for infra/: the SAM template, its renderer and the moto local stack (dev/local_stack.py).

* the rendered template is fresh and embeds the contract's JSON Schema verbatim;
* the template agrees with the Rust sources it configures (event pattern, env var names,
  EMF metric names and dimensions, the dashboard's metrics);
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
PROFILE_SCHEMA_FILE = ROOT / "schemas" / "json" / "profile-created.v1.schema.json"
USER_DELETED_SCHEMA_FILE = ROOT / "schemas" / "json" / "user-deleted.v1.schema.json"
PROFILE_DELETED_SCHEMA_FILE = ROOT / "schemas" / "json" / "profile-deleted.v1.schema.json"
METRICS_RS = ROOT / "runtime" / "src" / "metrics.rs"
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
    "PublishProfileCreated": ["true", "false"],
    "ProfileStore": ["appsync", "dynamodb"],
    "LifecycleEvents": ["true", "false"],
    "CreateTrail": ["true", "false"],
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
PROFILE_TABLE_ARN = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ProfileTableName}"


# --------------------------------------------------------------------------- rendering


def test_rendered_template_is_fresh():
    assert TEMPLATE.read_text(encoding="utf-8") == render.render(), (
        "infra/template.yaml is stale: run `dev/.venv/bin/python infra/render.py`"
    )


# Each contract's schema, and where its event is published (the schema is registered there only):
# UserConfirmed always, ProfileCreated with PublishProfileCreated, UserDeleted with LifecycleEvents,
# ProfileDeleted with both (the worker publishes it only with PROFILE_CREATED_EVENTS).
SCHEMA_RESOURCES = [
    ("UserConfirmedSchema", SCHEMA_FILE, "UserConfirmed", "WithSchemaRegistry", lambda c: True),
    ("ProfileCreatedSchema", PROFILE_SCHEMA_FILE, "ProfileCreated", "WithProfileCreatedSchema",
     lambda c: c["PublishProfileCreatedEvents"]),
    ("UserDeletedSchema", USER_DELETED_SCHEMA_FILE, "UserDeleted", "WithUserDeletedSchema",
     lambda c: c["FollowLifecycle"]),
    ("ProfileDeletedSchema", PROFILE_DELETED_SCHEMA_FILE, "ProfileDeleted", "WithProfileDeletedSchema",
     lambda c: c["PublishProfileCreatedEvents"] and c["FollowLifecycle"]),
]


@pytest.mark.parametrize("name, path, detail_type, condition, published", SCHEMA_RESOURCES,
                         ids=[r[0] for r in SCHEMA_RESOURCES])
def test_schema_registry_carries_the_contracts_verbatim(template, resources, name, path, detail_type, condition,
                                                         published):
    schema = resources[name]["Properties"]
    assert resources[name]["Type"] == "AWS::EventSchemas::Schema"
    assert schema["Type"] == "JSONSchemaDraft4"
    text = path.read_text(encoding="utf-8")
    assert schema["Content"] == text
    assert json.loads(schema["Content"])["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert json.loads(schema["Content"])["title"] == detail_type
    assert schema["RegistryName"] == {"Fn::GetAtt": ["SchemaRegistry", "RegistryName"]}
    assert schema["SchemaName"] == {"Fn::Sub": "${EventSource}@" + detail_type}
    assert schema["Description"] == f"detail of the {detail_type} event, version 1."
    assert resources[name]["Condition"] == condition
    # Registered only where it is published.
    for case in condition_cases(template, "CreateSchemaRegistry", "PublishProfileCreated", "LifecycleEvents"):
        assert case[condition] == (case["WithSchemaRegistry"] and published(case)), case
    # Its ARN is an output under the same condition.
    output = "SchemaArn" if name == "UserConfirmedSchema" else f"{name}Arn"
    assert template["Outputs"][output] == {
        "Condition": condition,
        "Description": f"ARN of the {detail_type} schema in the EventBridge schema registry.",
        "Value": {"Fn::GetAtt": [name, "SchemaArn"]},
    }


def test_every_contract_is_registered_and_rendered():
    """Every JSON Schema in schemas/json/ is embedded by render.py and by the construct's
    render-schema.mjs (so both --check runs cover it), and has its schema resource above."""
    files = sorted(p.name for p in (ROOT / "schemas" / "json").glob("*.schema.json"))
    assert sorted(p.name for p in render.SCHEMAS.values()) == files
    assert sorted(r[1].name for r in SCHEMA_RESOURCES) == files
    modules = (INFRA / "cdk" / "render-schema.mjs").read_text()
    assert sorted(re.findall(r'schema: "([^"]+)"', modules)) == files
    for name in files:
        module = INFRA / "cdk" / "src" / name.replace(".v1.schema.json", "-schema.ts")
        assert module.exists(), module


def test_render_embeds_each_schema_at_its_own_placeholder():
    source = "A:\n  Content: __USER_CONFIRMED_SCHEMA__\nB:\n  Content: __PROFILE_CREATED_SCHEMA__\n"
    text = render.render(source=source, schemas={"__USER_CONFIRMED_SCHEMA__": "{\"a\": 1}\n",
                                                 "__PROFILE_CREATED_SCHEMA__": "{\"b\": 2}"})
    assert text.endswith("A:\n  Content: |\n    {\"a\": 1}\nB:\n  Content: |-\n    {\"b\": 2}\n")


def test_render_rejects_a_missing_or_doubled_placeholder():
    both = {"__USER_CONFIRMED_SCHEMA__": "{}\n", "__PROFILE_CREATED_SCHEMA__": "{}\n"}
    with pytest.raises(ValueError):
        render.render(source="Resources: {}\n", schemas=both)
    with pytest.raises(ValueError, match="__PROFILE_CREATED_SCHEMA__ 0 times"):
        render.render(source="A:\n  Content: __USER_CONFIRMED_SCHEMA__\n", schemas=both)
    doubled = ("A:\n  Content: __USER_CONFIRMED_SCHEMA__\n  Other: __USER_CONFIRMED_SCHEMA__\n"
               "  Third: __PROFILE_CREATED_SCHEMA__\n")
    with pytest.raises(ValueError, match="__USER_CONFIRMED_SCHEMA__ 2 times"):
        render.render(source=doubled, schemas=both)


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
    # The contract's pattern with UserDeleted beside UserConfirmed: a consumer back-filled by a
    # replay gets the deletions of the users it is given, not only their confirmations.
    user_deleted = rust_const(ROOT / "schemas" / "src" / "user_deleted.rs", "USER_DELETED_DETAIL_TYPE")
    assert pattern == {"source": ["SRC"], "detail-type": [detail_type, user_deleted]}
    assert archive["ArchiveName"] == {"Fn::Sub": "${NamePrefix}-user-confirmed"}
    assert archive["Description"] == (
        "Every UserConfirmed and UserDeleted event published on the bus, for EventBridge replay.")
    assert archive["RetentionDays"] == {"Ref": "ArchiveRetentionDays"}
    for fn in (Fn(c) for c in condition_cases(template, "CreateEventBus")):
        bus = "GetAtt EventBus.Arn" if fn.conditions["CreateBus"] else BUS_ARN_EXISTING
        assert fn(archive["SourceArn"]) == bus
        name = fn(rule["EventBusName"])
        assert name == ("GetAtt EventBus.Name" if fn.conditions["CreateBus"] else "Ref ExistingEventBusName")


# Where each function's configuration is read (the env var names the test compares with the
# template). The reconciler lives in the ops crate: ops/src/reconcile.rs, or ops/src/reconcile/.
CONFIG_SOURCES = {
    "emitter": ["emitter/src/config.rs"],
    "worker": ["worker/src/config.rs"],
    # The store variables (PROFILE_STORE, PROFILE_TABLE, APPSYNC_*) are read by the worker's
    # StoreSetting::from_reader, which the reconciler calls: it checks the store the worker writes.
    # The orphan sweep (ops/src/orphans*) reads the worker's whole WorkerConfig the same way.
    "reconciler": ["ops/src/reconcile.rs", "ops/src/reconcile/*.rs", "worker/src/config.rs"],
}
# Where each service's EMF metrics are written (MetricsRecord::new("<service>")).
METRIC_SOURCES = {
    "emitter": ["emitter/src/*.rs"],
    "worker": ["worker/src/*.rs"],
    # The reconciler's record is the sweep report's (ops/src/sweep.rs).
    "reconciler": ["ops/src/sweep.rs", "ops/src/reconcile.rs", "ops/src/reconcile/*.rs"],
}


def sources(patterns: list[str]) -> list[Path]:
    return sorted({p for pattern in patterns for p in ROOT.glob(pattern) if p.is_file()})


# An environment variable read: `env.<method>("NAME"` (uc_runtime's EnvReader), clap's
# `env = "NAME"`, or `var("NAME")`.
ENV_READ = re.compile(r'(?:\benv\s*\.\s*\w+\(|\benv\s*=|\bvar\()\s*"([A-Z][A-Z0-9_]*)"')


def variables_read(service: str) -> set[str]:
    """Environment variable names a service's configuration code reads."""
    return set(ENV_READ.findall("\n".join(p.read_text() for p in sources(CONFIG_SOURCES[service]))))


# Variables the template sets for code being written in parallel (none now): read by the change
# that adds them. The test fails once the code reads one of them: then drop it from here.
NOT_YET_READ = {"worker": set(), "reconciler": set()}


def test_functions_get_only_the_variables_their_config_reads(resources):
    # STACK_NAME is read by uc-runtime's EMF writer (both functions), not by their config.rs.
    stack_variable = rust_const(METRICS_RS, "STACK_VARIABLE")
    assert stack_variable == "STACK_NAME"
    assert re.search(r"std::env::var\(STACK_VARIABLE\)", METRICS_RS.read_text())
    read = {service: variables_read(service) for service in CONFIG_SOURCES}
    emitter_env = set(resources["EmitterFunction"]["Properties"]["Environment"]["Variables"])
    worker_env = set(resources["WorkerFunction"]["Properties"]["Environment"]["Variables"])
    assert emitter_env == {"EVENT_BUS_NAME", "EVENT_SOURCE", "PUBLISH_BUDGET_MS", "FAILURE_POLICY", "FALLBACK_QUEUE_URL",
                           "STACK_NAME"}
    assert emitter_env <= read["emitter"] | {stack_variable}, emitter_env - read["emitter"]
    assert worker_env == {"APPSYNC_GRAPHQL_URL", "APPSYNC_API_ID", "DLQ_URL", "CONCURRENCY",
                          "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER", "STACK_NAME",
                          "PROFILE_CREATED_EVENTS", "EVENT_BUS_NAME", "PROFILE_STORE",
                          "PROFILE_TABLE", "PROFILE_TYPENAME", "RECONCILE_STATUSES", "USER_LOOKUP_RPS"}
    reconciler_env = set(resources["ReconcilerFunction"]["Properties"]["Environment"]["Variables"])
    assert reconciler_env == {"USER_POOL_ID", "EVENT_BUS_NAME", "EVENT_SOURCE", "RECONCILE_WATERMARK_PARAMETER",
                              "RECONCILE_OVERLAP_SECONDS", "RECONCILE_PUBLISH_RATE", "LIST_USERS_RPS",
                              "RECONCILE_STATUSES", "STACK_NAME", "PROFILE_STORE", "APPSYNC_GRAPHQL_URL",
                              "APPSYNC_API_ID", "PROFILE_TABLE", "USER_LOOKUP_RPS"}
    for service, env in (("worker", worker_env), ("reconciler", reconciler_env)):
        pending = NOT_YET_READ[service]
        assert not pending & read[service], f"now read by the {service}'s code: remove {pending & read[service]} from NOT_YET_READ"
        assert env <= read[service] | {stack_variable} | pending, env - read[service]
    for name in ("EmitterFunction", "WorkerFunction", "ReconcilerFunction"):
        assert resources[name]["Properties"]["Environment"]["Variables"]["STACK_NAME"] == {"Ref": "NamePrefix"}


def test_variables_read_finds_each_style():
    """The scanner the allow-lists rely on: the reconciler's config style is not known yet."""
    code = ('let a = env.optional("ALPHA"); let b = env.number( "BETA", 5, 1, 9)?;\n'
            '#[arg(long, env = "GAMMA")] x: String, let d = std::env::var("DELTA");')
    assert set(ENV_READ.findall(code)) == {"ALPHA", "BETA", "GAMMA", "DELTA"}
    assert {"APPSYNC_API_ID", "DLQ_URL", "VERIFY_USER"} <= variables_read("worker")


def test_functions_settings(template, resources):
    for name, crate, timeout in (("EmitterFunction", "uc-emitter", 3), ("WorkerFunction", "uc-worker", 30),
                                 ("ReconcilerFunction", "uc-reconciler", 900)):
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
    for fn in (Fn(c) for c in condition_cases(template, "AppSyncGraphqlUrl", "UserPoolId", "PublishProfileCreated",
                                              "CreateEventBus", "LifecycleEvents")):
        env = fn(worker["Environment"]["Variables"])
        expected = {"APPSYNC_GRAPHQL_URL"} if fn.conditions["UseGraphqlUrl"] else {"APPSYNC_API_ID"}
        publish = fn.conditions["PublishProfileCreatedEvents"]
        # The bus of ProfileCreated and of the lifecycle's events, whatever is published: the
        # emitter's bus, the same expression.
        assert env["EVENT_BUS_NAME"] == fn(resources["EmitterFunction"]["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"])
        assert env["PROFILE_CREATED_EVENTS"] == ("true" if publish else "false")
        assert env["STACK_NAME"] == "Ref NamePrefix"
        # The lifecycle's settings: the reconciler's statuses, the worker's own ListUsers pace.
        assert (env["RECONCILE_STATUSES"], env["USER_LOOKUP_RPS"]) == ("Ref ReconcileStatuses", "Ref WorkerUserLookupRate")
        fixed = {"DLQ_URL", "CONCURRENCY", "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER", "STACK_NAME", "PROFILE_CREATED_EVENTS",
                 "EVENT_BUS_NAME", "RECONCILE_STATUSES", "USER_LOOKUP_RPS"}
        assert set(env) - fixed == expected
        assert env["DLQ_URL"] == "Ref WorkerDeadLetterQueue"
        # The worker acts only on the stack's own pool and source.
        trial = fn.conditions["CreateTrialUserPool"]
        assert env["USER_POOL_ID"] == ("Ref TrialUserPool" if trial else "Ref UserPoolId")
        assert env["EVENT_SOURCE"] == "Ref EventSource"
        assert env["VERIFY_USER"] == "Ref VerifyUser"


def test_reconciler_function(template, resources):
    """One pass at a time, at most 15 minutes, its own role and log group; the environment is the
    uc-reconciler interface, the same pool, bus and source as the other functions."""
    function = resources["ReconcilerFunction"]
    props = function["Properties"]
    assert {k: props[k] for k in ("FunctionName", "MemorySize", "Timeout", "ReservedConcurrentExecutions", "Role",
                                  "LoggingConfig")} == {
        "FunctionName": {"Fn::Sub": "${NamePrefix}-reconciler"},
        "MemorySize": 256,
        "Timeout": 900,  # Lambda's maximum; the binary saves its progress before the deadline
        "ReservedConcurrentExecutions": 1,  # two passes never overlap
        "Role": {"Fn::GetAtt": ["ReconcilerRole", "Arn"]},
        "LoggingConfig": {"LogGroup": {"Ref": "ReconcilerLogGroup"}, "LogFormat": "Text"},
    }
    assert resources["ReconcilerLogGroup"]["Properties"] == {
        "LogGroupName": {"Fn::Sub": "/aws/lambda/${NamePrefix}-reconciler"},
        "RetentionInDays": {"Ref": "LogRetentionDays"},
    }
    assert "Condition" not in resources["ReconcilerLogGroup"]
    emitter_env = resources["EmitterFunction"]["Properties"]["Environment"]["Variables"]
    worker_env = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    for fn in (Fn(c) for c in condition_cases(template, "UserPoolId", "CreateEventBus", "ProfileStore",
                                              "AppSyncGraphqlUrl")):
        env = fn(props["Environment"]["Variables"])
        # Where a pass checks for profiles: exactly the worker's store variables.
        store = ("PROFILE_STORE", "PROFILE_TABLE", "APPSYNC_GRAPHQL_URL", "APPSYNC_API_ID")
        worker = fn(worker_env)
        assert {k: env.pop(k) for k in store if k in env} == {k: worker[k] for k in store if k in worker}
        assert env == {
            "USER_POOL_ID": fn(worker_env["USER_POOL_ID"]),
            "EVENT_BUS_NAME": fn(emitter_env["EVENT_BUS_NAME"]),
            "EVENT_SOURCE": "Ref EventSource",
            "RECONCILE_WATERMARK_PARAMETER": "Ref ReconcileWatermarkParameter",
            "RECONCILE_OVERLAP_SECONDS": "Ref ReconcileOverlapSeconds",
            "RECONCILE_PUBLISH_RATE": "Ref ReconcilePublishRate",
            "LIST_USERS_RPS": "Ref ReconcileListUsersRate",
            "RECONCILE_STATUSES": "Ref ReconcileStatuses",
            "STACK_NAME": "Ref NamePrefix",
            # The orphan sweep's second look in the pool, at the worker's pace.
            "USER_LOOKUP_RPS": "Ref WorkerUserLookupRate",
        }
        assert env["USER_POOL_ID"] == ("Ref TrialUserPool" if fn.conditions["CreateTrialUserPool"] else "Ref UserPoolId")
    # The interface's defaults (uc-reconciler's own) are the parameters' defaults.
    parameters = template["Parameters"]
    assert {k: parameters[k]["Default"] for k in ("ReconcileOverlapSeconds", "ReconcilePublishRate", "ReconcileListUsersRate",
                                                  "ReconcileStatuses", "ReconcileSchedule", "ReconcileScheduleState")} == {
        "ReconcileOverlapSeconds": 3600, "ReconcilePublishRate": 50, "ReconcileListUsersRate": 5,
        "ReconcileStatuses": "CONFIRMED,EXTERNAL_PROVIDER", "ReconcileSchedule": "rate(1 hour)",
        "ReconcileScheduleState": "ENABLED",
    }


@pytest.mark.parametrize("value, ok", [
    ("rate(1 hour)", True), ("rate(15 minutes)", True), ("rate(2 days)", True), ("cron(0 3 * * ? *)", True),
    ("cron(0/30 * ? * MON-FRI *)", True), ("", False), ("none", False), ("rate(0 hours)", False),
    ("rate(1 week)", False), ("at(2026-01-01T00:00:00)", False), ("rate(1 hour) ", False),
])
def test_reconcile_schedule_accepts_recurring_expressions_only(template, value, ok):
    """A recurring rate()/cron() expression; no one-time at(), and no sentinel that would mean
    "off" (ReconcileScheduleState does that)."""
    assert bool(re.fullmatch(template["Parameters"]["ReconcileSchedule"]["AllowedPattern"], value)) == ok


@pytest.mark.parametrize("value, ok", [
    ("CONFIRMED,EXTERNAL_PROVIDER", True), ("CONFIRMED", True), ("CONFIRMED,RESET_REQUIRED,FORCE_CHANGE_PASSWORD", True),
    ("", False), ("confirmed", False), ("CONFIRMED, EXTERNAL_PROVIDER", False), ("CONFIRMED,", False), ("ACTIVE", False),
])
def test_reconcile_statuses_are_cognito_statuses(template, value, ok):
    assert bool(re.fullmatch(template["Parameters"]["ReconcileStatuses"]["AllowedPattern"], value)) == ok


def test_reconcile_state_parameter(template, resources):
    """Created in every stack (the local one, which runs the binary as a process, included);
    "{}" until the reconciler writes its state; named after the stack; its name is an output, and
    uc-lab maps that output to RECONCILE_WATERMARK_PARAMETER in .local/stack.env."""
    parameter = resources["ReconcileWatermarkParameter"]
    assert parameter["Type"] == "AWS::SSM::Parameter" and "Condition" not in parameter
    assert parameter["Properties"] == {
        "Name": {"Fn::Sub": "/${NamePrefix}/reconciler/state"},
        "Description": parameter["Properties"]["Description"],
        "Type": "String",
        "Tier": "Standard",
        "Value": "{}",
    }
    assert template["Outputs"]["ReconcileWatermarkParameter"]["Value"] == {"Ref": "ReconcileWatermarkParameter"}
    assert "Condition" not in template["Outputs"]["ReconcileWatermarkParameter"]
    lab = (ROOT / "dev" / "lab" / "src" / "local.rs").read_text()
    table = re.search(r"const TEMPLATE_OUTPUTS: &\[\(&str, &str\)\] = &\[(.*?)\];", lab, re.S)
    assert table, "dev/lab/src/local.rs: TEMPLATE_OUTPUTS not found"
    assert re.search(r'\(\s*"ReconcileWatermarkParameter",\s*"RECONCILE_WATERMARK_PARAMETER",?\s*\)', table.group(1))


def test_reconciler_schedule_and_invoke_config(resources):
    """EventBridge Scheduler (no flexible window) invokes the function asynchronously; a failed
    pass is not retried (the next tick resumes), a tick waits at most one pass for the reserved slot."""
    schedule = resources["ReconcilerSchedule"]
    assert (schedule["Type"], schedule["Condition"]) == ("AWS::Scheduler::Schedule", "WithFunctions")
    assert schedule["Properties"] == {
        "Name": {"Fn::Sub": "${NamePrefix}-reconcile"},
        "Description": schedule["Properties"]["Description"],
        "ScheduleExpression": {"Ref": "ReconcileSchedule"},
        "State": {"Ref": "ReconcileScheduleState"},
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": {"Fn::GetAtt": ["ReconcilerFunction", "Arn"]},
            "RoleArn": {"Fn::GetAtt": ["ReconcilerSchedulerRole", "Arn"]},
            "RetryPolicy": {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 900},
        },
    }
    invoke = resources["ReconcilerInvokeConfig"]
    assert (invoke["Type"], invoke["Condition"]) == ("AWS::Lambda::EventInvokeConfig", "WithFunctions")
    assert invoke["Properties"] == {
        "FunctionName": {"Ref": "ReconcilerFunction"},
        "Qualifier": "$LATEST",
        "MaximumRetryAttempts": 0,
        "MaximumEventAgeInSeconds": resources["ReconcilerFunction"]["Properties"]["Timeout"],
    }



def test_orphan_sweep_schedule(template, resources):
    """With LifecycleEvents (and the functions), a second schedule invokes the same function with
    the input that asks for the orphan sweep ({"orphans": true}, uc-reconciler's orphan_ask):
    weekly by default, its own state, otherwise the pass's schedule's settings and role."""
    schedule = resources["ReconcilerOrphanSweepSchedule"]
    assert (schedule["Type"], schedule["Condition"]) == ("AWS::Scheduler::Schedule", "FollowLifecycleWithFunctions")
    pass_target = resources["ReconcilerSchedule"]["Properties"]["Target"]
    assert schedule["Properties"] == {
        "Name": {"Fn::Sub": "${NamePrefix}-orphan-sweep"},
        "Description": schedule["Properties"]["Description"],
        "ScheduleExpression": {"Ref": "OrphanSweepSchedule"},
        "State": {"Ref": "OrphanSweepScheduleState"},
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {**pass_target, "Input": '{"orphans": true}'},
    }
    assert json.loads(schedule["Properties"]["Target"]["Input"]) == {"orphans": True}
    # The payload uc-reconciler reads as a sweep with the defaults (not a dry run).
    reconciler = (ROOT / "ops" / "src" / "bin" / "uc-reconciler.rs").read_text()
    assert 'Some(Value::Bool(true)) => Ok(Some(OrphanAsk::default()))' in reconciler
    assert 'payload.get("orphans")' in reconciler
    parameters = template["Parameters"]
    assert parameters["OrphanSweepSchedule"]["Default"] == "rate(7 days)"
    assert parameters["OrphanSweepSchedule"]["AllowedPattern"] == parameters["ReconcileSchedule"]["AllowedPattern"]
    assert {k: v for k, v in parameters["OrphanSweepScheduleState"].items() if k != "Description"} == \
        {k: v for k, v in parameters["ReconcileScheduleState"].items() if k != "Description"}
    assert re.fullmatch(parameters["OrphanSweepSchedule"]["AllowedPattern"], "rate(7 days)")
    group, = [g for g in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
              if "ReconcileSchedule" in g["Parameters"]]
    assert {"OrphanSweepSchedule", "OrphanSweepScheduleState"} <= set(group["Parameters"])
    # Only with LifecycleEvents and the functions; the pass's schedule with the functions alone.
    for case in condition_cases(template, "LifecycleEvents", "DeployFunctions"):
        assert case["FollowLifecycleWithFunctions"] == (case["FollowLifecycle"] and case["WithFunctions"])
        sweep_present = case[schedule["Condition"]]
        assert sweep_present == (case["FollowLifecycle"] and case["WithFunctions"])
        assert case[resources["ReconcilerSchedule"]["Condition"]] == case["WithFunctions"]
    # The same scheduler role: it may invoke the reconciler and nothing else, whatever the input.
    assert schedule["Properties"]["Target"]["RoleArn"] == {"Fn::GetAtt": ["ReconcilerSchedulerRole", "Arn"]}


def test_reconciler_has_the_variables_the_orphan_sweep_reads(resources):
    """The sweep builds the worker's configuration (WorkerConfig::from_env) inside the reconciler:
    every worker variable it relies on is set there, with the worker's value. Left out, each for
    its reason: DLQ_URL, CONCURRENCY, VERIFY_USER (the worker's queue handling, unused by an
    erasure), PROFILE_TYPENAME (written on created items only), and PROFILE_CREATED_EVENTS: with
    it the sweep would publish ProfileDeleted, which the bus admits from the worker's role alone."""
    worker = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    reconciler = resources["ReconcilerFunction"]["Properties"]["Environment"]["Variables"]
    worker_only = {"DLQ_URL", "CONCURRENCY", "VERIFY_USER", "PROFILE_TYPENAME", "PROFILE_CREATED_EVENTS"}
    assert set(worker) - set(reconciler) == worker_only
    for name in set(worker) - worker_only:
        assert reconciler[name] == worker[name], name
    # The sweep's own: the listing's pace and the counted statuses.
    assert reconciler["LIST_USERS_RPS"] == {"Ref": "ReconcileListUsersRate"}
    assert reconciler["RECONCILE_STATUSES"] == {"Ref": "ReconcileStatuses"}
    # No MUTATION_* on the worker, so the default mapping (id=sub) on both.
    assert not any(k.startswith("MUTATION_") for k in worker)
    # The variables the sweep names in its own documentation are among them.
    run = (ROOT / "ops" / "src" / "orphans" / "run.rs").read_text()
    doc = re.search(r"((?:^///.*\n)+)pub struct OrphanSweep\b", run, re.M)
    assert doc, "ops/src/orphans/run.rs: OrphanSweep's doc comment not found"
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", doc.group(1)))
    assert {"USER_POOL_ID", "EVENT_BUS_NAME", "RECONCILE_STATUSES", "USER_LOOKUP_RPS"} <= documented
    assert documented - {"PROFILE_CREATED_EVENTS"} <= set(reconciler), documented - set(reconciler)


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


# --------------------------------------------------------------------------- user lifecycle (issue 22)

# Cognito's user-pool API calls as CloudTrail puts them on the default bus; no pool in the
# pattern (the worker checks every event against its pool with ListUsers).
LIFECYCLE_PATTERN = {
    "source": ["aws.cognito-idp"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["cognito-idp.amazonaws.com"],
               "eventName": ["AdminDeleteUser", "DeleteUser", "AdminCreateUser", "AdminSetUserPassword"]},
}
# Every resource LifecycleEvents adds (the event source mapping only with the functions too).
LIFECYCLE_RESOURCES = {"LifecycleRule", "LifecycleQueue", "LifecycleQueuePolicy", "LifecycleQueueAgeAlarm",
                       "WorkerFunctionLifecycleQueue", "ReconcilerStoreDeletePolicy", "ReconcilerOrphanSweepSchedule"}
# Of those, the ones that need the functions too.
LIFECYCLE_WITH_FUNCTIONS = {"WorkerFunctionLifecycleQueue", "ReconcilerOrphanSweepSchedule"}
LIFECYCLE_OUTPUTS = {"LifecycleQueueUrl", "LifecycleQueueArn", "LifecycleRuleArn"}
TRAIL_RESOURCES = {"Trail", "TrailBucket", "TrailBucketPolicy"}


def test_lifecycle_rule_takes_cognitos_cloudtrail_events_from_the_default_bus(template, resources):
    rule = resources["LifecycleRule"]
    assert (rule["Type"], rule["Condition"]) == ("AWS::Events::Rule", "FollowLifecycle")
    props = rule["Properties"]
    # CloudTrail's "AWS API Call via CloudTrail" events reach the account's default bus only,
    # whichever bus the pipeline uses.
    assert props["EventBusName"] == "default"
    assert props["EventPattern"] == LIFECYCLE_PATTERN
    assert props["State"] == "ENABLED"
    target, = props["Targets"]
    user_confirmed, = resources["UserConfirmedRule"]["Properties"]["Targets"]
    assert target == {
        "Id": "lifecycle-queue",
        "Arn": {"Fn::GetAtt": ["LifecycleQueue", "Arn"]},
        # The same retry policy parameters and the same rule DLQ as the UserConfirmed rule.
        "RetryPolicy": user_confirmed["RetryPolicy"],
        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["RuleDeadLetterQueue", "Arn"]}},
    }
    assert template["Parameters"]["LifecycleEvents"]["Default"] == "true"
    assert template["Conditions"]["FollowLifecycle"] == {"Fn::Equals": [{"Ref": "LifecycleEvents"}, "true"]}
    # Every lifecycle resource and output exists exactly when LifecycleEvents is on (the event
    # source mapping and the orphan sweep's schedule only with the functions).
    for case in condition_cases(template, "LifecycleEvents", "DeployFunctions"):
        present = {n for n, r in resources.items() if "Condition" in r and case[r["Condition"]]}
        expected = set()
        if case["FollowLifecycle"]:
            expected = LIFECYCLE_RESOURCES - (set() if case["WithFunctions"] else LIFECYCLE_WITH_FUNCTIONS)
        assert present & LIFECYCLE_RESOURCES == expected
        outputs = {n for n in LIFECYCLE_OUTPUTS if case[template["Outputs"][n]["Condition"]]}
        assert outputs == (LIFECYCLE_OUTPUTS if case["FollowLifecycle"] else set())
    assert {n for n, r in resources.items() if r.get("Condition") in ("FollowLifecycle", "FollowLifecycleWithFunctions")} == \
        LIFECYCLE_RESOURCES


def test_lifecycle_queue_is_the_worker_queues_twin_and_redrives_to_the_worker_dlq(resources):
    queue = resources["LifecycleQueue"]
    worker = resources["WorkerQueue"]
    assert queue["Properties"]["QueueName"] == {"Fn::Sub": "${NamePrefix}-lifecycle"}
    assert queue["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["WorkerDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    # Encrypted, visibility, retention and long polling as the worker queue.
    assert {k: v for k, v in queue["Properties"].items() if k != "QueueName"} == \
        {k: v for k, v in worker["Properties"].items() if k != "QueueName"}
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Metadata"] == worker["Metadata"]


def test_worker_consumes_the_lifecycle_queue(template, resources):
    """A second event source, with the functions and LifecycleEvents only: failed items one by
    one, small batches, at most two invocations at once (each paces its ListUsers calls)."""
    mapping = resources["WorkerFunctionLifecycleQueue"]
    assert (mapping["Type"], mapping["Condition"]) == ("AWS::Lambda::EventSourceMapping", "FollowLifecycleWithFunctions")
    assert template["Conditions"]["FollowLifecycleWithFunctions"] == {
        "Fn::And": [{"Condition": "FollowLifecycle"}, {"Condition": "WithFunctions"}]}
    assert mapping["Properties"] == {
        "EventSourceArn": {"Fn::GetAtt": ["LifecycleQueue", "Arn"]},
        "FunctionName": {"Ref": "WorkerFunction"},
        "BatchSize": 10,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": 2},
        "Enabled": True,
    }
    # ListUsers shares Cognito's UserList quota (30/s per account and Region) with the reconciler:
    # at the defaults both lifecycle invocations and a reconciler pass stay well below it.
    rate = template["Parameters"]["WorkerUserLookupRate"]
    assert (rate["Type"], rate["Default"], rate["MinValue"], rate["MaxValue"]) == ("Number", 5, 1, 25)
    reconciler = template["Parameters"]["ReconcileListUsersRate"]["Default"]
    assert 2 * rate["Default"] + reconciler < 30
    env = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["USER_LOOKUP_RPS"] == {"Ref": "WorkerUserLookupRate"}
    assert env["RECONCILE_STATUSES"] == resources["ReconcilerFunction"]["Properties"]["Environment"]["Variables"][
        "RECONCILE_STATUSES"] == {"Ref": "ReconcileStatuses"}


def test_trail_and_its_bucket_only_with_create_trail(template, resources):
    """CreateTrail (default false): a single-region trail of management write events, log file
    validation on, in a bucket of its own (SSE, versioned, no public access, TLS only, CloudTrail
    allowed for this trail only, logs expiring after 90 days), kept when the stack is deleted."""
    assert template["Parameters"]["CreateTrail"]["Default"] == "false"
    assert template["Conditions"]["WithTrail"] == {"Fn::Equals": [{"Ref": "CreateTrail"}, "true"]}
    assert {n for n, r in resources.items() if r.get("Condition") == "WithTrail"} == TRAIL_RESOURCES
    for case in condition_cases(template, "CreateTrail", "LifecycleEvents"):
        present = {n for n in TRAIL_RESOURCES if case[resources[n]["Condition"]]}
        assert present == (TRAIL_RESOURCES if case["WithTrail"] else set())
    trail = resources["Trail"]
    assert trail["Type"] == "AWS::CloudTrail::Trail" and trail["DependsOn"] == "TrailBucketPolicy"
    assert trail["Properties"] == {
        "TrailName": {"Fn::Sub": "${NamePrefix}-trail"},
        "S3BucketName": {"Ref": "TrailBucket"},
        "IsLogging": True,
        "IsMultiRegionTrail": False,
        "IncludeGlobalServiceEvents": False,
        "EnableLogFileValidation": True,
        "EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}],
    }
    bucket = resources["TrailBucket"]
    assert (bucket["Type"], bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("AWS::S3::Bucket", "Retain", "Retain")
    props = bucket["Properties"]
    assert props["BucketEncryption"] == {"ServerSideEncryptionConfiguration": [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rule, = props["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"], rule["NoncurrentVersionExpiration"]) == (
        "Enabled", 90, {"NoncurrentDays": 1})
    policy = resources["TrailBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "TrailBucket"}
    trail_arn = {"Fn::Sub": "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/${NamePrefix}-trail"}
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert list(statements) == ["CloudTrailAclCheck", "CloudTrailWrite", "TlsOnly"]
    cloudtrail = {"Service": "cloudtrail.amazonaws.com"}
    assert statements["CloudTrailAclCheck"] == {
        "Sid": "CloudTrailAclCheck", "Effect": "Allow", "Principal": cloudtrail, "Action": "s3:GetBucketAcl",
        "Resource": {"Fn::GetAtt": ["TrailBucket", "Arn"]},
        "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}}}
    assert statements["CloudTrailWrite"] == {
        "Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": cloudtrail, "Action": "s3:PutObject",
        "Resource": {"Fn::Sub": "${TrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*"},
        "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail_arn}}}
    assert statements["TlsOnly"] == {
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [{"Fn::GetAtt": ["TrailBucket", "Arn"]}, {"Fn::Sub": "${TrailBucket.Arn}/*"}],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    # The trail's name in the policy's ARN is the trail's own.
    assert trail_arn["Fn::Sub"].endswith("trail/" + trail["Properties"]["TrailName"]["Fn::Sub"])


def test_archive_retention_is_bounded_by_default(template):
    """An archived UserConfirmed carries the user's e-mail and an archive cannot be edited: its
    retention bounds how long an erased user's address may remain."""
    retention = template["Parameters"]["ArchiveRetentionDays"]
    assert 0 < retention["Default"] <= 365
    assert "erased" in retention["Description"]
    assert "UserConfirmed and UserDeleted events" in retention["Description"]


# --------------------------------------------------------------------------- IAM


def test_iam_resources_are_the_explicit_roles_and_the_auditor_policy(template):
    packaged = json.loads(json.dumps(template))
    local_stack.package_code(packaged, INFRA, None)  # CodeUri -> S3 location, as `sam package`
    translated = local_stack.translate(packaged, {"AppSyncApiId": "abc"}, "us-east-1")
    iam = {k: v["Type"] for k, v in translated["Resources"].items() if v["Type"].startswith("AWS::IAM::")}
    assert iam == {"EmitterRole": "AWS::IAM::Role", "WorkerRole": "AWS::IAM::Role", "ReconcilerRole": "AWS::IAM::Role",
                   "ReconcilerSchedulerRole": "AWS::IAM::Role", "AuditorPolicy": "AWS::IAM::ManagedPolicy",
                   "ReconcilerStoreReadPolicy": "AWS::IAM::Policy", "ReconcilerStoreDeletePolicy": "AWS::IAM::Policy"}
    lambda_trust = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    for name, trust in (("EmitterRole", lambda_trust), ("WorkerRole", lambda_trust), ("ReconcilerRole", lambda_trust),
                        ("ReconcilerSchedulerRole", {
                            # Only EventBridge Scheduler acting for this account.
                            "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}})):
        role = translated["Resources"][name]["Properties"]
        assert "ManagedPolicyArns" not in role and "PermissionsBoundary" not in role
        assert role["AssumeRolePolicyDocument"]["Statement"] == [trust], name
    # The auditor's policy is for an operator to attach: nothing of the stack's is given it, and
    # it has no fixed name (that would need CAPABILITY_NAMED_IAM).
    auditor = translated["Resources"]["AuditorPolicy"]["Properties"]
    assert not {"Roles", "Users", "Groups", "ManagedPolicyName"} & set(auditor)


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
    lifecycle_sids = {"ConsumeLifecycleQueue", "LookUpUsersInThePool", "ReadAndDeleteUserProfilesOnly",
                      "ReadAndSoftDeleteProfileItemsOnly", "PublishLifecycleEvents"}
    for fn in (Fn(c) for c in condition_cases(template, "AppSyncGraphqlUrl", "VerifyUser", "UserPoolId",
                                              "PublishProfileCreated", "CreateEventBus", "ProfileStore",
                                              "LifecycleEvents")):
        expected = {
            ("sqs:ReceiveMessage", "GetAtt WorkerQueue.Arn"),
            ("sqs:DeleteMessage", "GetAtt WorkerQueue.Arn"),
            ("sqs:GetQueueAttributes", "GetAtt WorkerQueue.Arn"),
            ("sqs:ChangeMessageVisibility", "GetAtt WorkerQueue.Arn"),
            ("sqs:SendMessage", "GetAtt WorkerDeadLetterQueue.Arn"),
            ("logs:CreateLogStream", "GetAtt WorkerLogGroup.Arn"),
            ("logs:PutLogEvents", "GetAtt WorkerLogGroup.Arn"),
        }
        if fn.conditions["StoreInAppSync"]:
            # The one mutation field, and the API itself only to look its endpoint up.
            expected.add(("appsync:GraphQL", field))
            if fn.conditions["LookUpApiById"]:
                expected.add(("appsync:GetGraphqlApi", APPSYNC_API))
        else:
            # The DynamoDB store: PutItem on the model table, nothing of AppSync.
            assert fn.conditions["StoreInDynamoDb"]
            expected.add(("dynamodb:PutItem", PROFILE_TABLE_ARN))
        if fn.conditions["VerifyUsersWithCognito"]:
            # Strict mode: the one pool's users, nothing else of Cognito.
            trial = fn.conditions["CreateTrialUserPool"]
            expected.add(("cognito-idp:AdminGetUser", "GetAtt TrialUserPool.Arn" if trial else pool))
        statements = fn(resources["WorkerRole"]["Properties"]["Policies"])[0]["PolicyDocument"]["Statement"]
        announce = [s for s in statements if s.get("Sid") == "AnnounceProfiles"]
        if fn.conditions["PublishProfileCreatedEvents"]:
            # The emitter's bus expression, both CreateEventBus cases; ProfileCreated only.
            bus = "GetAtt EventBus.Arn" if fn.conditions["CreateBus"] else BUS_ARN_EXISTING
            emitter, = [s for s in fn(resources["EmitterRole"]["Properties"]["Policies"])[0]["PolicyDocument"]["Statement"]
                        if s["Sid"] == "PublishUserConfirmed"]
            assert bus == emitter["Resource"]
            expected.add(("events:PutEvents", bus))
            assert announce == [{
                "Sid": "AnnounceProfiles", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus,
                "Condition": {"StringEquals": {"events:detail-type": "ProfileCreated", "events:source": "Ref EventSource"}},
            }]
        else:
            assert announce == []
        # LifecycleEvents: exactly these statements, and none without it.
        lifecycle = {s["Sid"]: s for s in statements if s["Sid"] in lifecycle_sids}
        if fn.conditions["FollowLifecycle"]:
            bus = "GetAtt EventBus.Arn" if fn.conditions["CreateBus"] else BUS_ARN_EXISTING
            trial = fn.conditions["CreateTrialUserPool"]
            queue = "GetAtt LifecycleQueue.Arn"
            consume = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
            if fn.conditions["StoreInDynamoDb"]:
                # DataStore's soft delete is an UpdateItem; GetItem reads the profile first.
                store = {"Sid": "ReadAndSoftDeleteProfileItemsOnly", "Effect": "Allow",
                         "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Resource": PROFILE_TABLE_ARN}
            else:
                store = {"Sid": "ReadAndDeleteUserProfilesOnly", "Effect": "Allow", "Action": "appsync:GraphQL",
                         "Resource": [APPSYNC_API + "/types/Query/fields/getUserProfile",
                                      APPSYNC_API + "/types/Mutation/fields/deleteUserProfile"]}
            assert lifecycle == {
                "ConsumeLifecycleQueue": {"Sid": "ConsumeLifecycleQueue", "Effect": "Allow", "Action": consume,
                                          "Resource": queue},
                "LookUpUsersInThePool": {"Sid": "LookUpUsersInThePool", "Effect": "Allow", "Action": "cognito-idp:ListUsers",
                                         "Resource": "GetAtt TrialUserPool.Arn" if trial else pool},
                store["Sid"]: store,
                "PublishLifecycleEvents": {
                    "Sid": "PublishLifecycleEvents", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus,
                    "Condition": {"StringEquals": {"events:source": "Ref EventSource",
                                                   "events:detail-type": ["UserConfirmed", "UserDeleted", "ProfileDeleted"]}}},
            }
            expected |= {(action, queue) for action in consume}
            expected.add(("cognito-idp:ListUsers", "GetAtt TrialUserPool.Arn" if trial else pool))
            expected |= {(a, r) for a in as_list(store["Action"]) for r in as_list(store["Resource"])}
            expected.add(("events:PutEvents", bus))
        else:
            assert lifecycle == {}
        assert grants(resources["WorkerRole"], fn) == expected
    # The two conditions are complements: exactly one of URL / API id reaches the worker.
    conditions = template["Conditions"]
    assert conditions["UseGraphqlUrl"] == {"Fn::Not": [conditions["LookUpApiById"]]}


POOL_ARN = "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/${UserPoolId}"


def test_reconciler_role_grants_exactly(template, resources):
    """The whole policy: ListUsers on the pool; PutEvents on the bus, UserConfirmed under the
    stack's source only (the emitter's statement); its one SSM parameter; its own logs. And, in
    a policy of its own (ReconcilerStoreReadPolicy), reading the store: getUserProfile, or
    BatchGetItem on the model table (a pass publishes only users without a profile)."""
    emitter_statements = lambda fn: fn(resources["EmitterRole"]["Properties"]["Policies"])[0]["PolicyDocument"]["Statement"]
    for fn in (Fn(c) for c in condition_cases(template, "CreateEventBus", "UserPoolId", "ProfileStore",
                                              "AppSyncGraphqlUrl", "LifecycleEvents")):
        if fn.conditions["StoreInDynamoDb"]:
            store = [{"Sid": "ReadProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:BatchGetItem",
                      "Resource": PROFILE_TABLE_ARN}]
        else:
            store = [{"Sid": "ReadProfilesOnly", "Effect": "Allow", "Action": "appsync:GraphQL",
                      "Resource": APPSYNC_API + "/types/Query/fields/getUserProfile"}]
            if fn.conditions["LookUpApiById"]:
                store.append({"Sid": "ResolveGraphqlEndpoint", "Effect": "Allow", "Action": "appsync:GetGraphqlApi",
                              "Resource": APPSYNC_API})
        policy, = fn(resources["ReconcilerRole"]["Properties"]["Policies"])
        assert policy["PolicyName"] == "reconciler"
        bus = "GetAtt EventBus.Arn" if fn.conditions["CreateBus"] else BUS_ARN_EXISTING
        pool = "GetAtt TrialUserPool.Arn" if fn.conditions["CreateTrialUserPool"] else POOL_ARN
        publish, = [s for s in emitter_statements(fn) if s["Sid"] == "PublishUserConfirmed"]
        read = fn(resources["ReconcilerStoreReadPolicy"]["Properties"])
        assert read == {"PolicyName": "reconciler-store-read", "Roles": ["Ref ReconcilerRole"],
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": store}}
        # LifecycleEvents: the orphan sweep reads the whole store (listUserProfiles, or Scan) and
        # deletes orphaned profiles (deleteUserProfile, or UpdateItem, the soft delete), and
        # publishes UserDeleted; nothing of it without, and nothing else.
        lifecycle = fn.conditions["FollowLifecycle"]
        delete = resources["ReconcilerStoreDeletePolicy"]
        assert delete["Condition"] == "FollowLifecycle"
        if fn.conditions["StoreInDynamoDb"]:
            deleting = [{"Sid": "SoftDeleteProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:UpdateItem",
                         "Resource": PROFILE_TABLE_ARN},
                        {"Sid": "ScanProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:Scan",
                         "Resource": PROFILE_TABLE_ARN}]
        else:
            deleting = [{"Sid": "DeleteUserProfilesOnly", "Effect": "Allow", "Action": "appsync:GraphQL",
                         "Resource": APPSYNC_API + "/types/Mutation/fields/deleteUserProfile"},
                        {"Sid": "ListProfilesOnly", "Effect": "Allow", "Action": "appsync:GraphQL",
                         "Resource": APPSYNC_API + "/types/Query/fields/listUserProfiles"}]
        assert fn(delete["Properties"]) == {"PolicyName": "reconciler-store-delete", "Roles": ["Ref ReconcilerRole"],
                                           "PolicyDocument": {"Version": "2012-10-17", "Statement": deleting}}
        announce = [{"Sid": "AnnounceDeletedUsers", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus,
                     "Condition": {"StringEquals": {"events:source": "Ref EventSource",
                                                    "events:detail-type": "UserDeleted"}}}] if lifecycle else []
        assert policy["PolicyDocument"] == {"Version": "2012-10-17", "Statement": [
            {"Sid": "ListPoolUsers", "Effect": "Allow", "Action": "cognito-idp:ListUsers", "Resource": pool},
            publish,
            *announce,
            {"Sid": "KeepReconcileState", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:PutParameter"],
             "Resource": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ReconcileWatermarkParameter}"},
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": "GetAtt ReconcilerLogGroup.Arn"},
        ]}
        assert publish == {"Sid": "PublishUserConfirmed", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus,
                           "Condition": {"StringEquals": {"events:source": "Ref EventSource",
                                                          "events:detail-type": "UserConfirmed"}}}
    # Every stack has the role (the bus policy names it; the enforcing-IAM test assumes it).
    assert "Condition" not in resources["ReconcilerRole"]
    assert template["Outputs"]["ReconcilerRoleArn"] == {
        "Description": template["Outputs"]["ReconcilerRoleArn"]["Description"],
        "Value": {"Fn::GetAtt": ["ReconcilerRole", "Arn"]}}


def test_scheduler_role_grants_exactly(resources):
    role = resources["ReconcilerSchedulerRole"]
    assert role["Condition"] == "WithFunctions"
    policy, = role["Properties"]["Policies"]
    assert policy == {"PolicyName": "scheduler", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Sid": "InvokeReconciler", "Effect": "Allow", "Action": "lambda:InvokeFunction",
         "Resource": {"Fn::GetAtt": ["ReconcilerFunction", "Arn"]}},
    ]}}


def test_auditor_policy_grants_exactly(template, resources):
    """docs/runbook.md section 5's policy: list the pool's users (and describe it, for the
    progress bar), query listUserProfiles and nothing else of the API; GetGraphqlApi only where
    the worker needs it too (the endpoint looked up by id)."""
    policy = resources["AuditorPolicy"]
    assert "Condition" not in policy
    for fn in (Fn(c) for c in condition_cases(template, "AppSyncGraphqlUrl", "UserPoolId")):
        document = fn(policy["Properties"]["PolicyDocument"])
        pool = "GetAtt TrialUserPool.Arn" if fn.conditions["CreateTrialUserPool"] else POOL_ARN
        expected = [{"Sid": "ListProfilesOnly", "Effect": "Allow", "Action": "appsync:GraphQL",
                     "Resource": APPSYNC_API + "/types/Query/fields/listUserProfiles"}]
        if fn.conditions["LookUpApiById"]:
            expected.append({"Sid": "ResolveGraphqlEndpoint", "Effect": "Allow", "Action": "appsync:GetGraphqlApi",
                             "Resource": APPSYNC_API})
        expected.append({"Sid": "ListUsers", "Effect": "Allow", "Action": ["cognito-idp:ListUsers", "cognito-idp:DescribeUserPool"],
                         "Resource": pool})
        assert document == {"Version": "2012-10-17", "Statement": expected}
        # The same actions, resources and Sids as the runbook's JSON.
        runbook = (ROOT / "docs" / "runbook.md").read_text()
        block = re.search(r"## 5\. Audit.*?```json\n(.*?)```", runbook, re.S)
        shown = json.loads(block.group(1))["Statement"]
        assert [(s["Sid"], s["Action"]) for s in shown] == [(s["Sid"], s["Action"]) for s in expected if s["Sid"] != "ResolveGraphqlEndpoint"]
    assert template["Outputs"]["AuditorPolicyArn"]["Value"] == {"Ref": "AuditorPolicy"}


def test_profile_store_statements_and_worker_settings(template, resources):
    """Each store gets its own statement, exactly, and the worker the variables that store reads."""
    for case in condition_cases(template, "ProfileStore", "AppSyncGraphqlUrl"):
        fn = Fn(case)
        statements = fn(resources["WorkerRole"]["Properties"]["Policies"])[0]["PolicyDocument"]["Statement"]
        store = [s for s in statements if s["Sid"] in {"CreateUserProfileOnly", "ResolveGraphqlEndpoint",
                                                        "PutProfileItemsOnly"}]
        env = fn(resources["WorkerFunction"]["Properties"]["Environment"]["Variables"])
        if case["StoreInDynamoDb"]:
            assert env["PROFILE_STORE"] == "dynamodb"
            assert store == [{"Sid": "PutProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:PutItem",
                              "Resource": PROFILE_TABLE_ARN}]
            assert env["PROFILE_TABLE"] == "Ref ProfileTableName"
            assert env["PROFILE_TYPENAME"] == "Ref ProfileTypeName"
            assert not {"APPSYNC_GRAPHQL_URL", "APPSYNC_API_ID"} & set(env)
        else:
            assert store[0] == {"Sid": "CreateUserProfileOnly", "Effect": "Allow", "Action": "appsync:GraphQL",
                                "Resource": APPSYNC_API + "/types/Mutation/fields/createUserProfile"}
            assert [s["Sid"] for s in store[1:]] == (["ResolveGraphqlEndpoint"] if case["LookUpApiById"] else [])
            assert len({"APPSYNC_GRAPHQL_URL", "APPSYNC_API_ID"} & set(env)) == 1
            # Unset: the worker's default store, appsync.
            assert not {"PROFILE_STORE", "PROFILE_TABLE", "PROFILE_TYPENAME"} & set(env)
    # Whichever store is chosen, the parameter it needs must be given.
    rules = template["Rules"]
    assert rules["AppSyncStoreNeedsTheApi"]["RuleCondition"] == {"Fn::Equals": [{"Ref": "ProfileStore"}, "appsync"]}
    assert rules["AppSyncStoreNeedsTheApi"]["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AppSyncApiId"}, ""]}]}
    assert rules["DynamoDbStoreNeedsTheTable"]["RuleCondition"] == {"Fn::Equals": [{"Ref": "ProfileStore"}, "dynamodb"]}
    assert rules["DynamoDbStoreNeedsTheTable"]["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ProfileTableName"}, ""]}]}
    # The worker's own names for the stores, its default (what an unset PROFILE_STORE means), and
    # its default type name.
    config = (ROOT / "worker" / "src" / "config.rs").read_text()
    assert '"PROFILE_STORE", "appsync", &["appsync", "dynamodb"]' in config
    assert template["Parameters"]["ProfileStore"]["AllowedValues"] == ["appsync", "dynamodb"]
    assert template["Parameters"]["ProfileTypeName"]["Default"] == rust_const(
        ROOT / "worker" / "src" / "dynamodb.rs", "DEFAULT_TYPENAME")


def test_no_wildcards_in_granted_actions_or_resources(template, resources):
    for case in condition_cases(template, "CreateEventBus", "AppSyncGraphqlUrl", "VerifyUser", "PublishProfileCreated",
                                "ProfileStore", "LifecycleEvents"):
        for role in ("EmitterRole", "WorkerRole", "ReconcilerRole", "ReconcilerSchedulerRole"):
            for action, resource in grants(resources[role], Fn(case)):
                assert "*" not in action and "*" not in resource, (role, action, resource)
        for policy in ("ReconcilerStoreReadPolicy", "ReconcilerStoreDeletePolicy"):
            for statement in Fn(case)(resources[policy]["Properties"]["PolicyDocument"]["Statement"]):
                for item in as_list(statement["Action"]) + as_list(statement["Resource"]):
                    assert "*" not in item, (policy, statement)
        for statement in Fn(case)(resources["AuditorPolicy"]["Properties"]["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow" and set(statement) == {"Sid", "Effect", "Action", "Resource"}
            for item in as_list(statement["Action"]) + as_list(statement["Resource"]):
                assert "*" not in item, statement


def test_bus_policy_lets_only_the_emitter_publish_user_confirmed(template, resources):
    policies = {k: v for k, v in resources.items() if v["Type"] == "AWS::Events::EventBusPolicy"}
    assert set(policies) == {"BusPolicyDenyForeignSource", "BusPolicyDenyForeignDetailType",
                             "BusPolicyDenyForeignProfileCreated", "BusPolicyDenyForeignProfileDeleted",
                             "BusPolicyDenyForeignUserDeleted"}
    # Present whatever LifecycleEvents and PublishProfileCreated say: the roles' grants decide.
    assert all("Condition" not in v for v in policies.values())
    for case in condition_cases(template, "CreateEventBus", "BackfillPublisherArn", "PublishProfileCreated"):
        fn = Fn(case)
        # The reconciler publishes UserConfirmed too: without it here its events would be denied.
        backfill = ["Ref BackfillPublisherArn"] if case["HasBackfillPublisher"] else []
        publishers = ["GetAtt EmitterRole.Arn", "GetAtt ReconcilerRole.Arn"] + backfill
        expected = {
            # The pipeline's own detail-types under the source are left to their own policies.
            "BusPolicyDenyForeignSource": (f"${{NamePrefix}}-only-emitter-source", {
                "StringEquals": {"events:source": "Ref EventSource"},
                "StringNotEquals": {"events:detail-type": ["UserConfirmed", "ProfileCreated", "ProfileDeleted", "UserDeleted"]},
                "ArnNotEquals": {"aws:PrincipalArn": publishers},
                "Null": {"aws:PrincipalArn": "false"},
            }),
            # The worker re-publishes UserConfirmed for users an administrator created.
            "BusPolicyDenyForeignDetailType": (f"${{NamePrefix}}-only-pipeline-user-confirmed", {
                "StringEquals": {"events:detail-type": "UserConfirmed"},
                "ArnNotEquals": {"aws:PrincipalArn": ["GetAtt EmitterRole.Arn", "GetAtt ReconcilerRole.Arn",
                                                     "GetAtt WorkerRole.Arn"] + backfill},
                "Null": {"aws:PrincipalArn": "false"},
            }),
            "BusPolicyDenyForeignProfileCreated": (f"${{NamePrefix}}-only-worker-profile-created", {
                "StringEquals": {"events:source": "Ref EventSource", "events:detail-type": "ProfileCreated"},
                "ArnNotEquals": {"aws:PrincipalArn": ["GetAtt WorkerRole.Arn"]},
                "Null": {"aws:PrincipalArn": "false"},
            }),
            "BusPolicyDenyForeignProfileDeleted": (f"${{NamePrefix}}-only-worker-profile-deleted", {
                "StringEquals": {"events:source": "Ref EventSource", "events:detail-type": "ProfileDeleted"},
                "ArnNotEquals": {"aws:PrincipalArn": ["GetAtt WorkerRole.Arn"]},
                "Null": {"aws:PrincipalArn": "false"},
            }),
            "BusPolicyDenyForeignUserDeleted": (f"${{NamePrefix}}-only-pipeline-user-deleted", {
                "StringEquals": {"events:source": "Ref EventSource", "events:detail-type": "UserDeleted"},
                "ArnNotEquals": {"aws:PrincipalArn": ["GetAtt WorkerRole.Arn", "GetAtt ReconcilerRole.Arn"]},
                "Null": {"aws:PrincipalArn": "false"},
            }),
        }
        for name, (sid, condition) in expected.items():
            props = fn(policies[name]["Properties"])
            statement = props["Statement"]
            assert props["EventBusName"] == ("GetAtt EventBus.Name" if case["CreateBus"] else "Ref ExistingEventBusName")
            assert props["StatementId"] == sid == statement["Sid"]
            assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
            assert statement["Action"] == "events:PutEvents"
            assert statement["Resource"] == ("GetAtt EventBus.Arn" if case["CreateBus"] else BUS_ARN_EXISTING)
            assert statement["Condition"] == condition, name


def bus_allows(resources: dict, fn: Fn, principal: str, source: str, detail_type: str) -> bool:
    """Whether ``principal`` (a role token such as "GetAtt WorkerRole.Arn") may put an event on
    the bus: its identity policy allows it (the stack's roles; any other IAM principal is given
    an unconditional Allow, the worst case) and no bus-policy Deny matches. Evaluates exactly the
    condition operators the statements use."""
    def matches(condition: dict) -> bool:
        context = {"events:source": source, "events:detail-type": detail_type, "aws:PrincipalArn": principal}
        for operator, tests in condition.items():
            for key, wanted in tests.items():
                wanted = as_list(wanted)
                if operator == "StringEquals" and context[key] not in wanted:
                    return False
                if operator in ("StringNotEquals", "ArnNotEquals") and context[key] in wanted:
                    return False
                if operator == "Null" and wanted != ["false"]:
                    return False  # (every principal here has a PrincipalArn)
                assert operator in ("StringEquals", "StringNotEquals", "ArnNotEquals", "Null"), operator
        return True

    for resource in resources.values():
        if resource["Type"] == "AWS::Events::EventBusPolicy" and fn.conditions.get(resource.get("Condition"), True):
            if matches(fn(resource["Properties"])["Statement"]["Condition"]):
                return False
    role = {"GetAtt EmitterRole.Arn": "EmitterRole", "GetAtt WorkerRole.Arn": "WorkerRole",
            "GetAtt ReconcilerRole.Arn": "ReconcilerRole"}.get(principal)
    if role is None:
        return True
    for policy in fn(resources[role]["Properties"]["Policies"]):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Action"] == "events:PutEvents" and matches(statement.get("Condition", {})):
                return True
    return False


def test_who_may_publish_what_on_the_bus(template, resources):
    """The bus policies and the roles together (moto evaluates neither the resource policy nor
    these condition keys): under the stack's source, UserConfirmed is the emitter's and the
    reconciler's (and the back-fill role's) only, and the worker's with LifecycleEvents;
    ProfileCreated the worker's only; ProfileDeleted the worker's and UserDeleted the worker's and
    the reconciler's, with LifecycleEvents only; the source Deny does not stop the worker."""
    emitter, worker, backfill, other = ("GetAtt EmitterRole.Arn", "GetAtt WorkerRole.Arn", "Ref BackfillPublisherArn",
                                        "arn:aws:iam::123456789012:role/someone-else")
    reconciler = "GetAtt ReconcilerRole.Arn"
    src = "Ref EventSource"
    for case in condition_cases(template, "BackfillPublisherArn", "PublishProfileCreated", "LifecycleEvents"):
        fn = Fn(case)
        publish = case["PublishProfileCreatedEvents"]
        lifecycle = case["FollowLifecycle"]
        allowed = lambda who, source, detail: bus_allows(resources, fn, who, source, detail)
        assert allowed(emitter, src, "UserConfirmed")
        assert allowed(reconciler, src, "UserConfirmed")
        assert not allowed(reconciler, src, "ProfileCreated") and not allowed(reconciler, src, "SomethingElse")
        assert not allowed(reconciler, "another.source", "UserConfirmed")
        assert allowed(worker, src, "ProfileCreated") == publish
        assert allowed(worker, src, "UserConfirmed") == lifecycle
        assert allowed(worker, src, "UserDeleted") == lifecycle
        assert allowed(worker, src, "ProfileDeleted") == lifecycle
        assert allowed(reconciler, src, "UserDeleted") == lifecycle
        assert not allowed(reconciler, src, "ProfileDeleted")
        assert not allowed(worker, "another.source", "UserConfirmed")
        assert not allowed(emitter, src, "ProfileCreated")
        for detail in ("UserDeleted", "ProfileDeleted"):
            assert not allowed(emitter, src, detail)
        for who in (other,) + ((backfill,) if case["HasBackfillPublisher"] else ()):
            assert allowed(who, src, "UserConfirmed") == (who == backfill)
            for detail in ("ProfileCreated", "ProfileDeleted", "UserDeleted"):
                assert not allowed(who, src, detail)  # the back-fill role included
            assert allowed(who, "another.source", "UserDeleted")  # not this stack's source
            # Another application's ProfileCreated under its own source (a shared bus) is not ours.
            assert allowed(who, "another.source", "ProfileCreated")
        assert not allowed(other, src, "SomethingElse")
        assert not allowed(other, "another.source", "UserConfirmed")
        assert not allowed(worker, src, "SomethingElse") and not allowed(emitter, src, "SomethingElse")


def test_queue_policies_accept_events_only_from_the_rule(template, resources):
    def from_rule(sid: str, queue: str, rule: str) -> dict:
        return {"Sid": sid, "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": f"GetAtt {queue}.Arn",
                "Condition": {"ArnEquals": {"aws:SourceArn": f"GetAtt {rule}.Arn"}}}

    assert resources["LifecycleQueuePolicy"]["Condition"] == "FollowLifecycle"
    for case in condition_cases(template, "LifecycleEvents"):
        fn = Fn(case)
        lifecycle = case["FollowLifecycle"]
        expected = {
            "WorkerQueuePolicy": ("WorkerQueue", [from_rule("FromUserConfirmedRuleOnly", "WorkerQueue", "UserConfirmedRule")]),
            # The rule DLQ takes what either rule could not deliver.
            "RuleDeadLetterQueuePolicy": ("RuleDeadLetterQueue", [
                from_rule("FromUserConfirmedRuleOnly", "RuleDeadLetterQueue", "UserConfirmedRule")] + (
                [from_rule("FromLifecycleRuleOnly", "RuleDeadLetterQueue", "LifecycleRule")] if lifecycle else [])),
            "LifecycleQueuePolicy": ("LifecycleQueue", [from_rule("FromLifecycleRuleOnly", "LifecycleQueue", "LifecycleRule")]),
        }
        for policy, (queue, allow) in expected.items():
            props = fn(resources[policy]["Properties"])
            assert props["Queues"] == [f"Ref {queue}"]
            assert [s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"] == allow, policy
            tls, = [s for s in props["PolicyDocument"]["Statement"] if s["Sid"] == "TlsOnly"]
            assert tls == {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
                           "Resource": f"GetAtt {queue}.Arn", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
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
        # As the rule DLQ: no pipeline role sends to it (the back-fill role may, to redrive).
        "LifecycleQueuePolicy": ("LifecycleQueue", []),
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


def metrics_written(service: str) -> dict[str, str]:
    """The EMF metrics a service writes, name -> "count", "timing" or "gauge": the literal names
    given to `count("Name"` / `timing_ms("Name"` / `gauge…("Name"` (a single value per record,
    such as the reconciler's OldestUnreconciledChange in seconds) in its METRIC_SOURCES, and the
    worker's per-disposition counter (MessageReport::add_to counts a name chosen by a match).
    A service whose code does not exist yet (the reconciler) writes nothing."""
    files = sources(METRIC_SOURCES[service])
    if not files:
        return {}
    code = "\n".join(p.read_text() for p in files)
    assert f'MetricsRecord::new("{service}")' in code
    written = {name: "count" for name in re.findall(r'\bcount\(\s*"(\w+)"', code)}
    written |= {name: "timing" for name in re.findall(r'\btiming_ms\(\s*"(\w+)"', code)}
    written |= {name: "gauge" for name in re.findall(r'\bgauge\w*\(\s*"(\w+)"', code)}
    for body in re.findall(r"fn add_to\(.*?\n    \}\n", code, re.S):
        match = re.search(r"let name = match [^{]*\{(.*?)\};\s*metrics\.count\(name,", body, re.S)
        assert match, "MessageReport::add_to no longer counts `name`: update metrics_written"
        written |= {name: "count" for name in re.findall(r'=>\s*"(\w+)"', match.group(1))}
    return written


# Metrics the dashboard and alarms show that the code does not write yet (none now): written by
# the change that adds them, (service, name) -> kind. The tests fail once the code writes one of
# them: then drop it from here.
NOT_YET_WRITTEN = {}
SERVICES = ("emitter", "worker", "reconciler")
# How each kind is graphed and alarmed: percentiles of timings, sums of counters, the maximum of
# a gauge.
STATISTIC = {"count": lambda s: s == "Sum", "timing": lambda s: bool(re.fullmatch(r"p\d+", s)),
             "gauge": lambda s: s == "Maximum"}


def metrics_written_or_pending() -> dict[str, dict[str, str]]:
    written = {service: metrics_written(service) for service in SERVICES}
    for (service, name), kind in NOT_YET_WRITTEN.items():
        assert name not in written[service], f"{service} now writes {name}: remove it from NOT_YET_WRITTEN"
        written[service][name] = kind
    return written


def test_metrics_written_reads_each_kind(tmp_path, monkeypatch):
    """The scanner the allow-list relies on, on a reconciler-shaped source."""
    source = tmp_path / "ops" / "src" / "reconcile.rs"
    source.parent.mkdir(parents=True)
    source.write_text('let mut m = MetricsRecord::new("reconciler");\nm.count("UsersScanned", n)\n'
                      '  .gauge_seconds( "OldestUnreconciledChange", age).timing_ms("PassLatency", ms);\n')
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert metrics_written("reconciler") == {"UsersScanned": "count", "OldestUnreconciledChange": "gauge",
                                             "PassLatency": "timing"}
    source.unlink()
    assert metrics_written("reconciler") == {}


def test_metrics_written_finds_the_worker_dispositions():
    worker = metrics_written("worker")
    for name in ("Created", "AlreadyExisted", "DeadLettered", "RetryableFailures", "PermanentFailures"):
        assert worker.get(name) == "count", name
    assert worker["AppSyncLatency"] == "timing"
    assert metrics_written("emitter")["HandlerLatency"] == "timing"


def test_emf_carries_the_stack_dimension_when_named():
    code = METRICS_RS.read_text()
    assert re.search(r'root\.insert\("Stack"\.into\(\), json!\(stack\)\);\s*json!\(\[\["Service", "Stack"\]\]\)', code)
    assert 'None => json!([["Service"]])' in code


def test_emf_alarms_match_the_metrics_the_code_writes(resources):
    namespace = rust_const(METRICS_RS, "METRICS_NAMESPACE")
    emf = {k: v["Properties"] for k, v in resources.items()
           if v["Type"] == "AWS::CloudWatch::Alarm" and v["Properties"]["Namespace"] == namespace}
    assert {(p["MetricName"], p["Dimensions"][0]["Value"]) for p in emf.values()} == {
        ("Failed", "emitter"), ("Fallback", "emitter"), ("PermanentFailures", "worker"),
        ("OldestUnreconciledChange", "reconciler"),
    }
    written = metrics_written_or_pending()
    for props in emf.values():
        service = props["Dimensions"][0]["Value"]
        # The exact dimension set the functions write with STACK_NAME = NamePrefix: an alarm on
        # Service alone would watch no metric, one without Stack every stack in the account.
        assert props["Dimensions"] == [{"Name": "Service", "Value": service}, {"Name": "Stack", "Value": {"Ref": "NamePrefix"}}]
        kind = written[service].get(props["MetricName"])
        assert kind in ("count", "gauge"), props["MetricName"]
        assert STATISTIC[kind](props["Statistic"]), (props["MetricName"], props["Statistic"])


def test_reconciler_alarms(template, resources):
    """reconciler-failed: any failed invocation (Lambda Errors; only with the function);
    reconciler-behind: OldestUnreconciledChange above ReconcileBehindAlarmSeconds. Both keep their
    state while no data comes (one datapoint per scheduled invocation)."""
    failed, behind = resources["ReconcilerFailedAlarm"], resources["ReconcilerBehindAlarm"]
    assert failed["Condition"] == "WithFunctions" and "Condition" not in behind
    common = {"EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "ignore"}
    props = {k: v for k, v in failed["Properties"].items() if k not in ("AlarmDescription", "AlarmActions", "OKActions")}
    assert props == {**common, "AlarmName": {"Fn::Sub": "${NamePrefix}-reconciler-failed"}, "Namespace": "AWS/Lambda",
                     "MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "ReconcilerFunction"}}],
                     "Statistic": "Sum", "Period": 300, "Threshold": 0}
    props = {k: v for k, v in behind["Properties"].items() if k not in ("AlarmDescription", "AlarmActions", "OKActions")}
    assert props == {**common, "AlarmName": {"Fn::Sub": "${NamePrefix}-reconciler-behind"},
                     "Namespace": "UserConfirmedPipeline", "MetricName": "OldestUnreconciledChange",
                     "Dimensions": [{"Name": "Service", "Value": "reconciler"}, {"Name": "Stack", "Value": {"Ref": "NamePrefix"}}],
                     "Statistic": "Maximum", "Period": 3600, "Threshold": {"Ref": "ReconcileBehindAlarmSeconds"}}
    # The default, 3 days, is independent of the overlap (1 h): the watermark's age climbs until a
    # pass completes, and a whole-pool pass of 10 million users takes about 37 h at the defaults
    # (10^7 users / (60 users per ListUsers call x 5 calls/s), in one 15-minute invocation an hour).
    parameters = template["Parameters"]
    assert parameters["ReconcileBehindAlarmSeconds"]["Default"] == 3 * 86400
    pass_hours = 10_000_000 / (60 * parameters["ReconcileListUsersRate"]["Default"]) / 900
    assert 36 < pass_hours < 38 and parameters["ReconcileBehindAlarmSeconds"]["Default"] > 1.5 * pass_hours * 3600


# --------------------------------------------------------------------------- dashboard


def dashboard_body(resources: dict, prefix: str = "uc-x", region: str = "eu-west-1", lifecycle: bool = True) -> dict:
    """The dashboard's JSON with its !Sub variables substituted the way CloudFormation would
    (the lifecycle queue's row, a variable of the Fn::Sub, under LifecycleEvents = ``lifecycle``)."""
    text, spliced = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    queues = {"WorkerQueue": f"{prefix}-worker", "WorkerDeadLetterQueue": f"{prefix}-worker-dlq",
              "RuleDeadLetterQueue": f"{prefix}-rule-dlq", "LifecycleQueue": f"{prefix}-lifecycle"}
    variables = {"NamePrefix": prefix, "AWS::Region": region, "ReconcileBehindAlarmSeconds": "259200",
                 **{f"{k}.QueueName": v for k, v in queues.items()}}
    assert list(spliced) == ["LifecycleQueueAge"]
    row = Fn({"FollowLifecycle": lifecycle})(spliced["LifecycleQueueAge"])
    substitute = lambda t: re.sub(r"\$\{([^}]*)\}", lambda m: variables[m.group(1)], t)
    unknown = set(re.findall(r"\$\{([^}]*)\}", text + row)) - set(variables) - {"LifecycleQueueAge"}
    assert not unknown, f"dashboard refers to {unknown}"
    variables["LifecycleQueueAge"] = substitute(row)
    return json.loads(substitute(text))


def dashboard_metrics(body: dict):
    """(widget title, namespace, metric name, dimensions, stat) of every metric row."""
    for widget in body["widgets"]:
        props = widget["properties"]
        for row in props.get("metrics", []):
            options = row[-1] if isinstance(row[-1], dict) else {}
            plain = [x for x in row if not isinstance(x, dict)]
            if not plain:
                continue  # an expression
            namespace, name, *pairs = plain
            assert len(pairs) % 2 == 0, row
            yield props["title"], namespace, name, dict(zip(pairs[::2], pairs[1::2])), options.get("stat", props.get("stat"))


def test_dashboard_is_one_resource_named_after_the_stack(resources):
    dashboards = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Dashboard"}
    assert list(dashboards) == ["Dashboard"]
    assert "Condition" not in dashboards["Dashboard"]
    assert dashboards["Dashboard"]["Properties"]["DashboardName"] == {"Ref": "NamePrefix"}
    body = dashboard_body(resources)
    assert body["widgets"] and all(w["type"] in ("metric", "text") for w in body["widgets"])
    for widget in body["widgets"]:
        assert 0 <= widget["x"] and widget["x"] + widget["width"] <= 24, widget
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "eu-west-1"
    text, = [w["properties"]["markdown"] for w in body["widgets"] if w["type"] == "text"]
    assert "docs/runbook.md" in text
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    assert re.search(r"^## Dashboard\b", runbook, re.M), "the text widget points to the runbook's Dashboard section"


def test_runbook_has_the_lifecycle_backlog_alarm(resources):
    """docs/runbook.md's entry for <prefix>-lifecycle-queue-backlog names the alarm and what the
    worker writes: its three log lines and the lifecycle's own DLQ reasons, as the code spells them."""
    name = resources["LifecycleQueueAgeAlarm"]["Properties"]["AlarmName"]["Fn::Sub"]
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    section = re.search(r"^## Lifecycle queue backlog\n(.*?)^## ", runbook, re.S | re.M).group(1)
    assert "`" + name.replace("${NamePrefix}", "<NamePrefix>") + "`" in section
    code = (ROOT / "worker" / "src" / "processor.rs").read_text() + (ROOT / "worker" / "src" / "lifecycle.rs").read_text()
    for line in ("lifecycle record handled", "lifecycle record not handled; SQS will retry", "lifecycle record refused"):
        assert f'"{line}"' in code and f"`{line}`" in section, line
    for reason in ("UserStillExists", "LifecycleOff"):
        assert f'"{reason}"' in code and f"`{reason}`" in section, reason
    assert "(../docs/runbook.md#lifecycle-queue-backlog)" in (INFRA / "README.md").read_text()


@pytest.mark.parametrize("lifecycle", [True, False])
def test_dashboard_shows_only_metrics_the_code_writes_for_this_stack(resources, lifecycle):
    namespace = rust_const(METRICS_RS, "METRICS_NAMESPACE")
    written = metrics_written_or_pending()
    queues = {"uc-x-worker", "uc-x-worker-dlq", "uc-x-rule-dlq"} | ({"uc-x-lifecycle"} if lifecycle else set())
    shown = set()
    for title, ns, name, dims, stat in dashboard_metrics(dashboard_body(resources, lifecycle=lifecycle)):
        if ns == namespace:
            # Filtered to this stack: the exact dimension set the functions write.
            assert set(dims) == {"Service", "Stack"} and dims["Stack"] == "uc-x", (title, name, dims)
            kind = written[dims["Service"]].get(name)
            assert kind, f"{title}: {dims['Service']} writes no metric {name}"
            # Percentiles of timings, sums of counters, the maximum of a gauge.
            assert STATISTIC[kind](stat), (title, name, stat)
            shown.add((dims["Service"], name, stat))
        else:
            assert ns == "AWS/SQS" and list(dims) == ["QueueName"] and dims["QueueName"] in queues, (title, ns, dims)
            assert stat == "Maximum"
            shown.add((dims["QueueName"], name, stat))
    assert shown == {
        ("worker", "SignUpToProfileLag", "p50"), ("worker", "SignUpToProfileLag", "p99"),
        ("emitter", "Published", "Sum"), ("emitter", "Fallback", "Sum"), ("emitter", "Failed", "Sum"),
        ("emitter", "Unknown", "Sum"), ("emitter", "Skipped", "Sum"),
        ("worker", "Created", "Sum"), ("worker", "AlreadyExisted", "Sum"), ("worker", "DeadLettered", "Sum"),
        ("worker", "RetryableFailures", "Sum"),
        ("worker", "ProfileCreatedPublished", "Sum"), ("worker", "ProfileCreatedNotPublished", "Sum"),
        ("uc-x-worker-dlq", "ApproximateNumberOfMessagesVisible", "Maximum"),
        ("uc-x-rule-dlq", "ApproximateNumberOfMessagesVisible", "Maximum"),
        ("uc-x-worker", "ApproximateAgeOfOldestMessage", "Maximum"),
        *([("uc-x-lifecycle", "ApproximateAgeOfOldestMessage", "Maximum")] if lifecycle else []),
        ("worker", "AppSyncLatency", "p50"), ("worker", "AppSyncLatency", "p99"),
        ("emitter", "HandlerLatency", "p99"),
        ("reconciler", "UsersScanned", "Sum"), ("reconciler", "Published", "Sum"), ("reconciler", "PublishFailed", "Sum"),
        ("reconciler", "PassesCompleted", "Sum"), ("reconciler", "OldestUnreconciledChange", "Maximum"),
    }


def test_dashboard_reconciler_row_names_the_alarm_threshold(resources):
    """The reconciler's row: the oldest unreconciled change graphed with the behind alarm's
    threshold in its title (the parameter's value), hourly like the schedule's default."""
    row = [w for w in dashboard_body(resources)["widgets"] if w["properties"].get("title", "").startswith("Reconciler:")]
    assert [w["y"] for w in row] == [27, 27] and [w["x"] for w in row] == [0, 12]
    assert row[1]["properties"]["title"] == "Reconciler: oldest unreconciled change (s; alarm above 259200)"
    assert {w["properties"]["period"] for w in row} == {resources["ReconcilerBehindAlarm"]["Properties"]["Period"]}


@pytest.mark.parametrize("lifecycle", [True, False])
def test_dashboard_expressions_refer_to_their_widgets_metrics(resources, lifecycle):
    for widget in dashboard_body(resources, lifecycle=lifecycle)["widgets"]:
        rows = widget["properties"].get("metrics", [])
        ids = [row[-1]["id"] for row in rows]
        assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z][a-zA-Z0-9_]*", i) for i in ids), ids
        for row in rows:
            expression = row[-1].get("expression")
            if expression is None:
                continue
            for prefix in re.findall(r'METRICS\("([^"]+)"\)', expression):
                # METRICS("x") is every metric of the widget whose id contains x.
                assert len([i for i in ids if prefix in i and i != row[-1]["id"]]) >= 2, (expression, prefix)
            bare = re.sub(r'"[^"]*"', "", expression)
            referred = set(re.findall(r"\b([a-z][a-zA-Z0-9_]*)\b", bare))
            assert referred <= set(ids), (expression, referred - set(ids))


def test_alarms_notify_the_topic_when_given(template, resources):
    alarms = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"WorkerDeadLetterQueueAlarm", "RuleDeadLetterQueueAlarm", "EmitterErrorsAlarm",
            "EmitterPublishFailedAlarm", "WorkerPermanentFailuresAlarm", "ReconcilerFailedAlarm",
            "ReconcilerBehindAlarm", "LifecycleQueueAgeAlarm"} <= set(alarms)
    # The reconciler's metrics come once per scheduled invocation: missing data keeps the state.
    sparse = {"ReconcilerFailedAlarm", "ReconcilerBehindAlarm"}
    for case in condition_cases(template, "AlarmTopicArn", "DeployFunctions"):
        for name, alarm in alarms.items():
            props = Fn(case)(alarm["Properties"])
            if case["HasAlarmTopic"]:
                assert props["AlarmActions"] == ["Ref AlarmTopicArn"] == props["OKActions"]
            else:
                assert "AlarmActions" not in props and "OKActions" not in props
            assert props["TreatMissingData"] == ("ignore" if name in sparse else "notBreaching"), name
    dlq = resources["WorkerDeadLetterQueueAlarm"]["Properties"]
    assert (dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
    # The lifecycle queue's backlog alarm is the worker queue's, on that queue, with LifecycleEvents.
    lifecycle, worker = resources["LifecycleQueueAgeAlarm"], resources["WorkerQueueAgeAlarm"]
    assert lifecycle["Condition"] == "FollowLifecycle"
    differs = ("AlarmName", "AlarmDescription", "Dimensions")
    assert {k: v for k, v in lifecycle["Properties"].items() if k not in differs} == \
        {k: v for k, v in worker["Properties"].items() if k not in differs}
    assert lifecycle["Properties"]["AlarmName"] == {"Fn::Sub": "${NamePrefix}-lifecycle-queue-backlog"}
    assert lifecycle["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["LifecycleQueue", "QueueName"]}}]


def test_every_parameter_is_described_and_constrained(template):
    constraints = {"AllowedValues", "AllowedPattern", "MinValue", "MaxValue"}
    for name, spec in template["Parameters"].items():
        assert spec.get("Description", "").strip(), name
        assert constraints & set(spec), f"{name} has no constraint"


def test_outputs(template):
    assert {
        "EventBusName", "EventBusArn", "QueueUrl", "QueueArn", "WorkerDlqUrl", "RuleDlqUrl",
        "SchemaArn", "EmitterFunctionArn", "WorkerFunctionArn", "RuleArn", "ArchiveName",
        "UserPoolId", "ReconcilerRoleArn", "ReconcilerFunctionArn", "ReconcileWatermarkParameter", "AuditorPolicyArn",
    } <= set(template["Outputs"])
    assert template["Outputs"]["ReconcilerFunctionArn"]["Condition"] == "WithFunctions"
    outputs = template["Outputs"]
    assert {k: (v["Condition"], v["Value"]) for k, v in outputs.items() if k in LIFECYCLE_OUTPUTS} == {
        "LifecycleQueueUrl": ("FollowLifecycle", {"Ref": "LifecycleQueue"}),
        "LifecycleQueueArn": ("FollowLifecycle", {"Fn::GetAtt": ["LifecycleQueue", "Arn"]}),
        "LifecycleRuleArn": ("FollowLifecycle", {"Fn::GetAtt": ["LifecycleRule", "Arn"]}),
    }
    # uc-lab writes the lifecycle queue's URL to .local/stack.env (the local stack follows the lifecycle).
    lab = (ROOT / "dev" / "lab" / "src" / "local.rs").read_text()
    table = re.search(r"const TEMPLATE_OUTPUTS: &\[\(&str, &str\)\] = &\[(.*?)\];", lab, re.S)
    assert re.search(r'\(\s*"LifecycleQueueUrl",\s*"LIFECYCLE_QUEUE_URL",?\s*\)', table.group(1))


def test_readme_documents_every_parameter_and_output(template):
    """Docs change with behaviour: infra/README.md's Parameters and Outputs sections name each one."""
    readme = (INFRA / "README.md").read_text()
    section = lambda title: re.search(rf"^## {title}\n(.*?)^## ", readme, re.S | re.M).group(1)
    parameters, outputs = section("Parameters"), section("Outputs")
    assert [n for n in template["Parameters"] if f"`{n}`" not in parameters] == []
    assert [n for n in template["Outputs"] if f"`{n}`" not in outputs] == []


# --------------------------------------------------------------------------- linters


def test_cfn_lint_reports_nothing():
    cfn_lint = BIN / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def checkov_binary() -> Path | None:
    configured = os.environ.get("CHECKOV")
    candidates = [Path(configured)] if configured else [ROOT / "dev" / ".venv-infra" / "bin" / "checkov"]
    return next((c for c in candidates if c.is_file()), None)


@pytest.mark.parametrize("create_trail", [False, True])
def test_checkov_fails_no_unsuppressed_check(tmp_path, create_trail):
    """checkov evaluates the template's conditions with the parameters' defaults, so the trail
    (CreateTrail, default false) is scanned in a copy whose CreateTrail default is "true"."""
    checkov = checkov_binary()
    if checkov is None:
        pytest.skip("checkov not installed: make lint-infra installs dev/.venv-infra (dev/requirements-infra.txt)")
    scanned = TEMPLATE
    if create_trail:
        text = TEMPLATE.read_text(encoding="utf-8")
        default = '  CreateTrail:\n    Type: String\n    Default: "false"\n'
        assert text.count(default) == 1
        scanned = tmp_path / "template.yaml"
        scanned.write_text(text.replace(default, default.replace('"false"', '"true"')), encoding="utf-8")
    result = subprocess.run(
        [str(checkov), "--file", str(scanned), "--framework", "cloudformation",
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
    scanned_resources = {c["resource"] for r in reports for kind in ("passed_checks", "skipped_checks")
                         for c in r["results"].get(kind, [])}
    trail = {"AWS::CloudTrail::Trail.Trail", "AWS::S3::Bucket.TrailBucket"}
    assert (trail <= scanned_resources) == create_trail, scanned_resources & trail


# --------------------------------------------------------------------------- moto


MOTO_SKIPS = {  # resource types moto's CloudFormation does not implement (see infra/README.md)
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
# With DeployFunctions=true, besides those: the function alarms, and the reconciler's schedule
# and async-invoke settings (moto has the Scheduler and EventInvokeConfig APIs, but its
# CloudFormation creates neither).
MOTO_SKIPS_WITH_FUNCTIONS = MOTO_SKIPS | {
    "AWS::CloudWatch::Alarm EmitterErrorsAlarm",
    "AWS::CloudWatch::Alarm ReconcilerFailedAlarm",
    "AWS::Scheduler::Schedule ReconcilerSchedule",
    "AWS::Scheduler::Schedule ReconcilerOrphanSweepSchedule",
    "AWS::Lambda::EventInvokeConfig ReconcilerInvokeConfig",
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


def role_policy(iam, role_arn: str, policy_name: str | None = None) -> dict:
    """The role's one inline policy (or the one named `policy_name`)."""
    name = role_arn.rsplit("/", 1)[-1]
    if policy_name is None:
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
        "QueueUrl", "QueueArn", "WorkerDlqUrl", "WorkerDlqArn", "RuleDlqUrl",
        "LifecycleQueueUrl", "LifecycleQueueArn", "LifecycleRuleArn", "EmitterRoleArn",
        "WorkerRoleArn", "ReconcilerRoleArn", "ReconcileWatermarkParameter", "AuditorPolicyArn", "UserPoolId",
        "UserPoolClientId",
    ]
    assert outputs["EventBusName"] == "uc-test-events"
    assert outputs["ReconcileWatermarkParameter"] == "/uc-test/reconciler/state"
    assert outputs["EventSource"] == "userconfirmed.cognito"
    for key in ("QueueUrl", "WorkerDlqUrl", "RuleDlqUrl", "LifecycleQueueUrl"):
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
    assert json.loads(archive["EventPattern"]) == {
        "source": ["userconfirmed.cognito"], "detail-type": ["UserConfirmed", "UserDeleted"]}

    emitter = role_policy(iam, outputs["EmitterRoleArn"])
    assert {s["Sid"]: s["Resource"] for s in emitter["Statement"]}["PublishUserConfirmed"] == outputs["EventBusArn"]
    worker = role_policy(iam, outputs["WorkerRoleArn"])
    sids = {s["Sid"]: s["Resource"] for s in worker["Statement"] if s}
    assert sids["CreateUserProfileOnly"] == "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Mutation/fields/createUserProfile"
    assert sids["ConsumeWorkerQueue"] == outputs["QueueArn"]
    assert sids["DeadLetterPermanentFailures"] == outputs["WorkerDlqArn"]
    announce, = [s for s in worker["Statement"] if s and s["Sid"] == "AnnounceProfiles"]
    assert announce["Resource"] == outputs["EventBusArn"]
    assert announce["Condition"] == {"StringEquals": {"events:detail-type": "ProfileCreated", "events:source": "userconfirmed.cognito"}}
    # The local stack follows the lifecycle (LifecycleEvents' default).
    assert sids["ConsumeLifecycleQueue"] == outputs["LifecycleQueueArn"]
    assert sids["LookUpUsersInThePool"] == f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{outputs['UserPoolId']}"
    assert sids["ReadAndDeleteUserProfilesOnly"] == [
        "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Query/fields/getUserProfile",
        "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Mutation/fields/deleteUserProfile"]
    assert sids["PublishLifecycleEvents"] == outputs["EventBusArn"]
    lifecycle = sqs.get_queue_attributes(QueueUrl=outputs["LifecycleQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert json.loads(lifecycle["RedrivePolicy"]) == {"deadLetterTargetArn": outputs["WorkerDlqArn"], "maxReceiveCount": 5}
    assert (lifecycle["QueueArn"], lifecycle["VisibilityTimeout"], lifecycle["SqsManagedSseEnabled"]) == (
        outputs["LifecycleQueueArn"], "180", "true")

    # The reconciler's identity and state exist in the local stack, whose binaries run as processes.
    reconciler = role_policy(iam, outputs["ReconcilerRoleArn"], "reconciler")
    read = role_policy(iam, outputs["ReconcilerRoleArn"], "reconciler-store-read")
    reconciler = {"Statement": reconciler["Statement"] + read["Statement"]}
    pool_arn = f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{outputs['UserPoolId']}"
    # (moto's GetAtt of a log group's Arn lacks AWS's ":*" suffix)
    delete = role_policy(iam, outputs["ReconcilerRoleArn"], "reconciler-store-delete")
    reconciler = {"Statement": reconciler["Statement"] + delete["Statement"]}
    assert {s["Sid"]: (s["Action"], s["Resource"].removesuffix(":*")) for s in reconciler["Statement"] if s} == {
        "ListPoolUsers": ("cognito-idp:ListUsers", pool_arn),
        "PublishUserConfirmed": ("events:PutEvents", outputs["EventBusArn"]),
        "AnnounceDeletedUsers": ("events:PutEvents", outputs["EventBusArn"]),
        "DeleteUserProfilesOnly": ("appsync:GraphQL",
                                   "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Mutation/fields/deleteUserProfile"),
        "ReadProfilesOnly": ("appsync:GraphQL",
                             "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Query/fields/getUserProfile"),
        # The orphan sweep's whole-store read.
        "ListProfilesOnly": ("appsync:GraphQL",
                             "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Query/fields/listUserProfiles"),
        # The local stack gives no endpoint: the functions would look it up by id.
        "ResolveGraphqlEndpoint": ("appsync:GetGraphqlApi", "arn:aws:appsync:us-east-1:123456789012:apis/local"),
        "KeepReconcileState": (["ssm:GetParameter", "ssm:PutParameter"],
                               "arn:aws:ssm:us-east-1:123456789012:parameter/uc-test/reconciler/state"),
        "WriteOwnLogs": (["logs:CreateLogStream", "logs:PutLogEvents"],
                         "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/uc-test-reconciler"),
    }
    publish, = [s for s in reconciler["Statement"] if s and s["Sid"] == "PublishUserConfirmed"]
    assert publish["Condition"] == {"StringEquals": {"events:source": "userconfirmed.cognito", "events:detail-type": "UserConfirmed"}}
    ssm = aws("ssm", moto)
    state = ssm.get_parameter(Name=outputs["ReconcileWatermarkParameter"])["Parameter"]
    assert (state["Type"], state["Value"]) == ("String", "{}")
    described, = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [outputs["ReconcileWatermarkParameter"]]}])["Parameters"]
    assert described["Tier"] == "Standard"
    auditor = iam.get_policy(PolicyArn=outputs["AuditorPolicyArn"])["Policy"]
    document = iam.get_policy_version(PolicyArn=outputs["AuditorPolicyArn"], VersionId=auditor["DefaultVersionId"])
    document = document["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert {s["Sid"]: s["Resource"] for s in document["Statement"]} == {  # the API looked up by id here
        "ListProfilesOnly": "arn:aws:appsync:us-east-1:123456789012:apis/local/types/Query/fields/listUserProfiles",
        "ResolveGraphqlEndpoint": "arn:aws:appsync:us-east-1:123456789012:apis/local",
        "ListUsers": pool_arn,
    }
    assert auditor["AttachmentCount"] == 0

    pool = idp.describe_user_pool(UserPoolId=outputs["UserPoolId"])["UserPool"]
    assert pool["Name"] == "uc-test"
    idp.describe_user_pool_client(UserPoolId=outputs["UserPoolId"], ClientId=outputs["UserPoolClientId"])
    # The local stack runs the binaries itself: no function in moto.
    assert "EmitterFunctionArn" not in outputs
    assert not [f for f in aws("lambda", moto).list_functions()["Functions"] if f["FunctionName"].startswith("uc-test-")]


def test_dashboard_in_moto(local, moto):
    """moto's CloudFormation creates the dashboard (it stores the body as given): after
    CloudFormation's substitution it is JSON whose metrics are this stack's."""
    outputs, _ = local
    cloudwatch = aws("cloudwatch", moto)
    names = [d["DashboardName"] for d in cloudwatch.list_dashboards(DashboardNamePrefix="uc-test")["DashboardEntries"]]
    assert names == ["uc-test"]
    body = json.loads(cloudwatch.get_dashboard(DashboardName="uc-test")["DashboardBody"])
    queues = {url.rsplit("/", 1)[-1] for url in (outputs["QueueUrl"], outputs["WorkerDlqUrl"], outputs["RuleDlqUrl"],
                                                  outputs["LifecycleQueueUrl"])}
    rows = list(dashboard_metrics(body))
    assert rows and "${" not in json.dumps(body)
    for title, namespace, name, dims, _ in rows:
        assert dims.get("Stack") == "uc-test" or dims.get("QueueName") in queues, (title, name, dims)
    assert {w["properties"]["region"] for w in body["widgets"] if w["type"] == "metric"} == {"us-east-1"}


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


def cloudtrail_event(event_name: str, **extra) -> dict:
    """The detail of Cognito's "AWS API Call via CloudTrail" event, shaped as CloudTrail writes it."""
    return {
        "eventVersion": "1.09", "eventSource": "cognito-idp.amazonaws.com", "eventName": event_name,
        "awsRegion": "us-east-1", "eventType": "AwsApiCall", "managementEvent": True, "readOnly": False,
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/admin/someone"},
        "requestParameters": {"userPoolId": "us-east-1_Example1", "username": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        "additionalEventData": {"sub": "0b3c8f1e-0000-4000-8000-000000000001"},
        **extra,
    }


def receive_all(sqs, url: str, seconds: float = 10) -> list[dict]:
    messages = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        messages += got
        if messages and not got:
            break
    return messages


def test_cognito_cloudtrail_events_on_the_default_bus_reach_the_lifecycle_queue(local, moto):
    """The proof on moto: LifecycleRule sits on the default bus (the pipeline's own bus is another
    one here), and a CloudTrail-shaped Cognito event put there lands in the lifecycle queue, while
    other Cognito calls, other sources and the same event on the pipeline's bus do not."""
    outputs, _ = local
    events, sqs = aws("events", moto), aws("sqs", moto)
    rule, = [r for r in events.list_rules(EventBusName="default")["Rules"] if r["Arn"] == outputs["LifecycleRuleArn"]]
    assert json.loads(rule["EventPattern"]) == LIFECYCLE_PATTERN
    assert rule["State"] == "ENABLED"
    target, = events.list_targets_by_rule(Rule=rule["Name"], EventBusName="default")["Targets"]
    rule_dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["RuleDlqUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert (target["Id"], target["Arn"]) == ("lifecycle-queue", outputs["LifecycleQueueArn"])
    assert target["DeadLetterConfig"] == {"Arn": rule_dlq_arn}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert outputs["EventBusName"] != "default"

    cloudtrail = "AWS API Call via CloudTrail"
    wanted = ["AdminDeleteUser", "DeleteUser", "AdminCreateUser", "AdminSetUserPassword"]
    entries = [{"Source": "aws.cognito-idp", "DetailType": cloudtrail, "Detail": json.dumps(cloudtrail_event(name))}
               for name in wanted]
    entries += [
        # Another Cognito call, another service's record, the same record on the pipeline's bus.
        {"Source": "aws.cognito-idp", "DetailType": cloudtrail, "Detail": json.dumps(cloudtrail_event("AdminGetUser"))},
        {"Source": "aws.s3", "DetailType": cloudtrail,
         "Detail": json.dumps(cloudtrail_event("AdminDeleteUser", eventSource="s3.amazonaws.com"))},
        {"EventBusName": outputs["EventBusName"], "Source": "aws.cognito-idp", "DetailType": cloudtrail,
         "Detail": json.dumps(cloudtrail_event("AdminDeleteUser"))},
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    messages = receive_all(sqs, outputs["LifecycleQueueUrl"])
    envelopes = [json.loads(m["Body"]) for m in messages]
    assert sorted(e["detail"]["eventName"] for e in envelopes) == sorted(wanted), envelopes
    for envelope in envelopes:
        assert (envelope["source"], envelope["detail-type"]) == ("aws.cognito-idp", cloudtrail)
        assert envelope["detail"]["eventSource"] == "cognito-idp.amazonaws.com"
    # Nothing of it reached the worker queue.
    assert receive_all(sqs, outputs["QueueUrl"], seconds=2) == []


def test_redeploy_is_idempotent(local, moto):
    outputs, _ = local
    # The reconciler's state, as the function writes it, survives a redeploy (CloudFormation
    # writes the parameter's Value only when its properties change).
    ssm = aws("ssm", moto)
    state = '{"watermark":"2026-01-01T00:00:00Z"}'
    ssm.put_parameter(Name=outputs["ReconcileWatermarkParameter"], Value=state, Type="String", Overwrite=True)
    again, stderr = run_local_stack("deploy", "--endpoint", moto, "--stack-name", "uc-test")
    assert again == outputs
    assert "updating stack uc-test" in stderr
    assert ssm.get_parameter(Name=outputs["ReconcileWatermarkParameter"])["Parameter"]["Value"] == state
    same, _ = run_local_stack("outputs", "--endpoint", moto, "--stack-name", "uc-test")
    assert same == {k: v for k, v in outputs.items() if k != "UserPoolClientId"}


def test_functions_event_source_and_permission_in_moto(moto):
    outputs, stderr = run_local_stack(
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
    assert set(wenv) == {"APPSYNC_GRAPHQL_URL", "DLQ_URL", "CONCURRENCY", "USER_POOL_ID", "EVENT_SOURCE", "VERIFY_USER",
                         "STACK_NAME", "PROFILE_CREATED_EVENTS", "EVENT_BUS_NAME", "RECONCILE_STATUSES", "USER_LOOKUP_RPS"}
    assert (wenv["RECONCILE_STATUSES"], wenv["USER_LOOKUP_RPS"]) == ("CONFIRMED,EXTERNAL_PROVIDER", "5")
    assert wenv["USER_POOL_ID"] == outputs["UserPoolId"]
    assert (wenv["EVENT_SOURCE"], wenv["VERIFY_USER"]) == (outputs["EventSource"], "none")
    # The EMF Stack dimension, and the ProfileCreated publisher on the emitter's bus.
    assert wenv["STACK_NAME"] == env["STACK_NAME"] == "uc-fn"
    assert (wenv["PROFILE_CREATED_EVENTS"], wenv["EVENT_BUS_NAME"]) == ("true", env["EVENT_BUS_NAME"])

    # (moto filters list_event_source_mappings by function name, not by ARN)
    mappings = {m["EventSourceArn"]: m for m in lam.list_event_source_mappings(FunctionName="uc-fn-worker")["EventSourceMappings"]}
    assert set(mappings) == {outputs["QueueArn"], outputs["LifecycleQueueArn"]}
    lifecycle = mappings[outputs["LifecycleQueueArn"]]
    assert (lifecycle["FunctionArn"], lifecycle["BatchSize"], lifecycle["FunctionResponseTypes"], lifecycle["ScalingConfig"]) == (
        outputs["WorkerFunctionArn"], 10, ["ReportBatchItemFailures"], {"MaximumConcurrency": 2})
    mapping = mappings[outputs["QueueArn"]]
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

    # The reconciler: its settings, its environment (the stack's own pool, bus, source and state).
    reconciler = lam.get_function_configuration(FunctionName=outputs["ReconcilerFunctionArn"])
    assert (reconciler["FunctionName"], reconciler["Runtime"], reconciler["Handler"], reconciler["Timeout"],
            reconciler["MemorySize"], reconciler["Role"]) == (
        "uc-fn-reconciler", "provided.al2023", "bootstrap", 900, 256, outputs["ReconcilerRoleArn"])
    assert lam.get_function_concurrency(FunctionName="uc-fn-reconciler")["ReservedConcurrentExecutions"] == 1
    renv = {k: str(v) for k, v in reconciler["Environment"]["Variables"].items()}
    assert renv == {
        "USER_POOL_ID": outputs["UserPoolId"], "EVENT_BUS_NAME": outputs["EventBusName"], "EVENT_SOURCE": outputs["EventSource"],
        "RECONCILE_WATERMARK_PARAMETER": outputs["ReconcileWatermarkParameter"], "RECONCILE_OVERLAP_SECONDS": "3600",
        "RECONCILE_PUBLISH_RATE": "50", "LIST_USERS_RPS": "5", "RECONCILE_STATUSES": "CONFIRMED,EXTERNAL_PROVIDER",
        "STACK_NAME": "uc-fn",
        # The worker's store, where a pass checks for profiles.
        "APPSYNC_GRAPHQL_URL": "https://abcdefghijklmnopqrstuvwxyz.appsync-api.us-east-1.amazonaws.com/graphql",
        # The orphan sweep's second look in the pool, at the worker's pace.
        "USER_LOOKUP_RPS": "5",
    }
    # The scheduler's role may invoke exactly that function.
    cfn, iam = aws("cloudformation", moto), aws("iam", moto)
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.list_stack_resources(StackName="uc-fn")["StackResourceSummaries"]}
    scheduler_role = iam.get_role(RoleName=physical["ReconcilerSchedulerRole"])["Role"]
    assert scheduler_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    invoke, = role_policy(iam, scheduler_role["Arn"])["Statement"]
    assert (invoke["Action"], invoke["Resource"]) == ("lambda:InvokeFunction", outputs["ReconcilerFunctionArn"])
    # The API's URL is given here: the auditor gets no GetGraphqlApi (and moto created the policy,
    # which it would refuse with a null statement from an AWS::NoValue inside the list).
    auditor = iam.get_policy(PolicyArn=outputs["AuditorPolicyArn"])["Policy"]
    document = iam.get_policy_version(PolicyArn=outputs["AuditorPolicyArn"], VersionId=auditor["DefaultVersionId"])
    document = document["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert [s["Sid"] for s in document["Statement"]] == ["ListProfilesOnly", "ListUsers"]

    # moto gap (infra/README.md): its CloudFormation skips the schedule and the async-invoke
    # settings, although moto's Scheduler and Lambda APIs have them. When moto learns them, this
    # fails: then check them here instead.
    skipped = re.search(r"^moto skipped: (.*)$", stderr, re.M)
    assert skipped and set(skipped.group(1).split(", ")) == MOTO_SKIPS_WITH_FUNCTIONS
    assert aws("scheduler", moto).list_schedules(NamePrefix="uc-fn-")["Schedules"] == []
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError):
        lam.get_function_event_invoke_config(FunctionName="uc-fn-reconciler")
    deleted, _ = run_local_stack("delete", "--endpoint", moto, "--stack-name", "uc-fn")
    assert deleted == {"deleted": "uc-fn"}


def test_dynamodb_store_deploys_with_put_item_on_its_table_only(moto):
    outputs, _ = run_local_stack(
        "deploy", "--endpoint", moto, "--stack-name", "uc-ddb",
        "--param", "DeployFunctions=true",
        "--param", "ProfileStore=dynamodb",
        "--param", "AppSyncApiId=",
        "--param", "ProfileTableName=UserProfile-abcdefghijklmnopqrstuvwxyz-dev",
    )
    worker = aws("lambda", moto).get_function_configuration(FunctionName=outputs["WorkerFunctionArn"])
    wenv = {k: str(v) for k, v in worker["Environment"]["Variables"].items()}
    assert (wenv["PROFILE_STORE"], wenv["PROFILE_TABLE"], wenv["PROFILE_TYPENAME"]) == (
        "dynamodb", "UserProfile-abcdefghijklmnopqrstuvwxyz-dev", "UserProfile")
    assert not {"APPSYNC_GRAPHQL_URL", "APPSYNC_API_ID"} & set(wenv)
    statements = role_policy(aws("iam", moto), outputs["WorkerRoleArn"])["Statement"]
    store = [s for s in statements if "dynamodb" in json.dumps(s) or "appsync" in json.dumps(s)]
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/UserProfile-abcdefghijklmnopqrstuvwxyz-dev"
    assert store == [
        {"Sid": "PutProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table},
        # LifecycleEvents (the default): read a profile, and DataStore's soft delete.
        {"Sid": "ReadAndSoftDeleteProfileItemsOnly", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": table},
    ]
    delete = role_policy(aws("iam", moto), outputs["ReconcilerRoleArn"], "reconciler-store-delete")["Statement"]
    assert delete == [{"Sid": "SoftDeleteProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": table},
                      {"Sid": "ScanProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:Scan", "Resource": table}]
    deleted, _ = run_local_stack("delete", "--endpoint", moto, "--stack-name", "uc-ddb")
    assert deleted == {"deleted": "uc-ddb"}


def test_existing_bus_mode_in_moto(moto):
    outputs, _ = run_local_stack(
        "deploy", "--endpoint", moto, "--stack-name", "uc-shared",
        "--param", "CreateEventBus=false", "--param", "ExistingEventBusName=default",
        "--param", "EventSource=example.signup", "--no-user-pool", "--param", "UserPoolId=us-east-1_Existing1",
        "--param", "PublishProfileCreated=false", "--param", "LifecycleEvents=false",
    )
    assert outputs["EventBusName"] == "default"
    # LifecycleEvents=false: no lifecycle rule, queue or output.
    assert not LIFECYCLE_OUTPUTS & set(outputs)
    assert not [u for u in aws("sqs", moto).list_queues(QueueNamePrefix="uc-shared-").get("QueueUrls", []) if "lifecycle" in u]
    assert outputs["EventBusArn"] == "arn:aws:events:us-east-1:123456789012:event-bus/default"
    assert "UserPoolClientId" not in outputs and outputs["UserPoolId"] == "us-east-1_Existing1"
    events = aws("events", moto)
    rule, = [r for r in events.list_rules(EventBusName="default")["Rules"] if r["Arn"] == outputs["RuleArn"]]
    assert json.loads(rule["EventPattern"]) == {"source": ["example.signup"], "detail-type": ["UserConfirmed"]}
    # PublishProfileCreated=false and LifecycleEvents=false: the worker may put no event at all,
    # and has no lifecycle grant.
    worker = role_policy(aws("iam", moto), outputs["WorkerRoleArn"])
    assert not [s for s in worker["Statement"] if s and "events:" in json.dumps(s)]
    assert not [s for s in worker["Statement"] if s and ("cognito-idp" in json.dumps(s) or "Lifecycle" in json.dumps(s))]
    iam = aws("iam", moto)
    reconciler_role = outputs["ReconcilerRoleArn"].rsplit("/", 1)[-1]
    assert sorted(iam.list_role_policies(RoleName=reconciler_role)["PolicyNames"]) == ["reconciler", "reconciler-store-read"]
    run_local_stack("delete", "--endpoint", moto, "--stack-name", "uc-shared")


def test_local_stack_refuses_a_non_loopback_endpoint():
    result = subprocess.run(
        [sys.executable, str(LOCAL_STACK), "deploy", "--endpoint", "https://cloudformation.us-east-1.amazonaws.com",
         "--stack-name", "x"], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1 and "loopback" in result.stderr and result.stdout == ""
