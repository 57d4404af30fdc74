#!/usr/bin/env python3
"""Deploys infra/template.yaml (the SAM template) to a moto server: the local stack.

The same template as in AWS, translated locally with the pinned aws-sam-translator (no AWS
call: an empty managed-policy map, as the template names no managed policy) and created as a
CloudFormation stack in moto. The Rust `ops local up` command and the test suite call it.

Usage
-----
    dev/.venv/bin/python dev/local_stack.py deploy  --endpoint http://127.0.0.1:PORT \\
        --stack-name NAME [--region us-east-1] [--template infra/template.yaml] \\
        [--param Key=Value ...] [--no-user-pool]
    dev/.venv/bin/python dev/local_stack.py outputs --endpoint URL --stack-name NAME [--region R]
    dev/.venv/bin/python dev/local_stack.py delete  --endpoint URL --stack-name NAME [--region R]
    dev/.venv/bin/python dev/local_stack.py translate [--template T] [--param Key=Value ...]
    dev/.venv/bin/python dev/local_stack.py deploy  --endpoint URL --stack-name NAME \\
        --cfn-template infra/cdk/uc-pipeline.template.json [--param Key=Value ...]

deploy
    Creates the stack, or updates it when it exists (re-running is safe: unchanged resources
    are left alone), waits until it is complete, then prints ONE JSON object on stdout: the
    stack's outputs by OutputKey (all values strings), plus, when this script created the
    Cognito user pool, "UserPoolClientId". Example:

        {"EventBusName": "uc-local-events", "EventBusArn": "arn:aws:events:...",
         "EventSource": "userconfirmed.cognito", "RuleArn": "arn:aws:events:...",
         "ArchiveName": "uc-local-user-confirmed", "QueueUrl": "http://...",
         "QueueArn": "arn:aws:sqs:...", "WorkerDlqUrl": "http://...", "WorkerDlqArn": "...",
         "RuleDlqUrl": "http://...", "LifecycleQueueUrl": "http://...",
         "LifecycleQueueArn": "...", "LifecycleRuleArn": "...", "EmitterRoleArn": "arn:aws:iam::...",
         "WorkerRoleArn": "arn:aws:iam::...", "UserPoolId": "us-east-1_...",
         "UserPoolClientId": "..."}

    Parameters the local stack sets unless --param overrides them (moto gaps, see
    infra/README.md): DeployFunctions=false (the local stack runs the binaries itself, and
    moto would run an SQS event source's function in Docker), CreateSchemaRegistry=false (moto
    has no EventSchemas), AppSyncApiId=local (the worker talks to the AppSync stand-in,
    dev/appsync_standin.py, see dev/standin/README.md), NamePrefix=<stack name,
    lower-cased>. LifecycleEvents keeps its default, true: moto's CloudFormation creates the
    lifecycle rule on moto's default bus, where CloudTrail-shaped events put with PutEvents
    reach the lifecycle queue (its URL is the output LifecycleQueueUrl, like every queue output
    rewritten to moto's endpoint below); CreateTrail keeps false (moto has no CloudTrail in
    CloudFormation). When no UserPoolId is given (and not --no-user-pool), a moto Cognito pool
    named "<stack-name>" with an app client named "<stack-name>" is created, or reused when it
    exists, and passed as UserPoolId: moto's CloudFormation cannot create the template's trial
    pool. With DeployFunctions=true the local code URIs are "packaged" like `sam package`
    does: the zip (or, when it has not been built, a placeholder zip) is uploaded to a moto S3
    bucket.

deploy --cfn-template PATH
    Deploys a plain CloudFormation template instead (no SAM translation), such as the CDK
    construct's infra/cdk/uc-pipeline.template.json, with the same outputs, the same local
    defaults (those the template declares) and the same user pool handling. DeployFunctions and
    CreateSchemaRegistry, when the template does not declare them, are switches of this script
    (default false, as for SAM): false drops every AWS::Lambda::Function, resp.
    AWS::EventSchemas::* resource, and every resource and output that refers to one, directly
    or through another dropped one. With functions, each function's Code {S3Bucket: Ref B,
    S3Key: Ref K} gets B = the local artifact bucket and K's value (default: the parameter's
    default, e.g. "uc-emitter/bootstrap.zip") uploaded from target/lambda/<first path part>/
    bootstrap.zip, or a placeholder zip when it has not been built.

outputs
    Prints the same JSON object for an existing stack (no UserPoolClientId); pass the same
    --cfn-template for a stack deployed from one (only the key order comes from the template).
delete
    Deletes the stack (not the user pool) and waits; prints {"deleted": "<name>"}.
translate
    Prints the translated CloudFormation template (JSON) without deploying it.

Resources moto's CloudFormation does not implement are skipped by moto; deploy reports
them on stderr as one line, ``moto skipped: <Type> <LogicalId>, ...``, and the JSON key
order is the template's Outputs order. stderr carries all diagnostics; stdout carries only
the JSON. Exit status: 0 success, 1 failure (message on stderr), 2 usage error.

Only loopback endpoints (127.0.0.0/8, localhost, [::1]) are accepted: this script never
talks to AWS. Credentials are AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
AWS_SESSION_TOKEN) when both keys are set, which a moto that enforces IAM needs; otherwise
fixed dummy ones.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import ipaddress
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = ROOT / "infra" / "template.yaml"
ARTIFACT_BUCKET = "local-stack-artifacts"
LOCAL_DEFAULTS = {
    "DeployFunctions": "false",
    "CreateSchemaRegistry": "false",
    "AppSyncApiId": "local",
}
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def credentials_from_env(environ: Any = os.environ) -> dict[str, str]:
    """The standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) when both
    are set, else fixed dummy credentials. moto accepts anything unless it enforces IAM
    (INITIAL_NO_AUTH_ACTION_COUNT); then it needs the keys of a principal it knows
    (ops/tests/iam_enforced.rs). Only ever sent to a loopback endpoint."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return dict(DUMMY_CREDENTIALS)
    found = {"aws_access_key_id": key, "aws_secret_access_key": secret}
    if environ.get("AWS_SESSION_TOKEN"):
        found["aws_session_token"] = environ["AWS_SESSION_TOKEN"]
    return found


CREDENTIALS = credentials_from_env()


class Failure(Exception):
    """A message for stderr and exit status 1."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- template


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain JSON-like data, CloudFormation's short tags (!Ref, !Sub, ...) as
    their long forms, read with cfn-lint's decoder."""
    from cfnlint.decode import decode_str

    template, matches = decode_str(path.read_text(encoding="utf-8"))
    if matches or template is None:
        raise Failure(f"{path}: " + "; ".join(str(m) for m in matches))
    return json.loads(json.dumps(template))


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }


def translate(template: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, Any]:
    """SAM -> CloudFormation with the pinned aws-sam-translator, locally."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.session.Session(region_name=region, **CREDENTIALS)
    values = {**parameter_defaults(template), **parameters}
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    try:
        return translator.translate(
            sam_template=copy.deepcopy(template),
            parameter_values=values,
            get_managed_policy_map=lambda: {},
        )
    except Exception as exc:  # samtranslator's InvalidDocumentException lists every cause
        causes = getattr(exc, "causes", None) or []
        detail = "; ".join(str(getattr(c, "message", c)) for c in causes)
        raise Failure(f"SAM translation failed: {exc} {detail}".strip()) from exc


def placeholder_zip() -> bytes:
    """A stand-in for a binary that has not been built (moto never runs it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        zf.writestr(info, "#!/bin/sh\necho 'placeholder: build with cargo lambda' >&2\nexit 1\n")
    return buf.getvalue()


def package_code(template: dict[str, Any], template_dir: Path, s3: Any | None) -> list[str]:
    """Replaces local CodeUri paths with S3 locations, as `sam package` does. Uploads only when
    `s3` is given (functions deployed); otherwise the location is a name that is never read."""
    notes = []
    bucket_ready = False
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
            continue
        path = (template_dir / code_uri).resolve()
        if path.is_file():
            body = path.read_bytes()
        else:
            body = placeholder_zip()
            if s3 is not None:
                notes.append(f"{logical_id}: {code_uri} not built; deployed a placeholder zip")
        key = f"{logical_id}/{hashlib.sha256(body).hexdigest()[:16]}.zip"
        if s3 is not None:
            if not bucket_ready:
                try:
                    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
                except s3.exceptions.BucketAlreadyOwnedByYou:
                    pass
                bucket_ready = True
            s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
        props["CodeUri"] = {"Bucket": ARTIFACT_BUCKET, "Key": key}
    return notes


# --------------------------------------------------------------------------- moto


def check_endpoint(endpoint: str) -> None:
    url = urlparse(endpoint)
    host = url.hostname or ""
    if url.scheme not in ("http", "https") or not host:
        raise Failure(f"--endpoint must be an http(s) URL, not {endpoint!r}")
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise Failure(f"--endpoint must be a loopback address (127.0.0.0/8, localhost, [::1]): {host}")


def client(service: str, endpoint: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        **CREDENTIALS,
    )


def find_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    stacks = [s for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
    return stacks[0] if stacks else None


def wait(cfn: Any, name: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = find_stack(cfn, name)
        if stack is None:
            raise Failure(f"stack {name} vanished")
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            if status not in TERMINAL_OK:
                reason = stack.get("StackStatusReason", "")
                raise Failure(f"stack {name} ended in {status} {reason}".strip())
            return stack
        if time.monotonic() > deadline:
            raise Failure(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(0.2)


def outputs_of(stack: dict[str, Any], template: dict[str, Any] | None = None) -> dict[str, str]:
    values = {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs", [])}
    order = list((template or {}).get("Outputs", {}))
    keys = [k for k in order if k in values] + sorted(k for k in values if k not in order)
    return {k: values[k] for k in keys if values[k] is not None}


def ensure_user_pool(endpoint: str, region: str, name: str) -> tuple[str, str]:
    """A moto Cognito pool + app client named `name`, created once and reused afterwards."""
    idp = client("cognito-idp", endpoint, region)
    pool_id = None
    for page in idp.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == name:
                pool_id = pool["Id"]
                break
        if pool_id:
            break
    if pool_id is None:
        pool_id = idp.create_user_pool(
            PoolName=name,
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
        )["UserPool"]["Id"]
    clients = idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    client_id = next((c["ClientId"] for c in clients if c["ClientName"] == name), None)
    if client_id is None:
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=name,
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
    return pool_id, client_id


def skipped_resources(cfn: Any, name: str, translated: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """Resources moto left out (types its CloudFormation does not implement), excluding those
    whose Condition is false."""
    present = {
        r["LogicalResourceId"]
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name)
        for r in page["StackResourceSummaries"]
    }
    conditions = evaluate_conditions(translated, parameters)
    missing = []
    for logical_id, resource in translated.get("Resources", {}).items():
        cond = resource.get("Condition")
        if cond is not None and not conditions.get(cond, True):
            continue
        if logical_id not in present:
            missing.append(f"{resource['Type']} {logical_id}")
    return missing


def prune_false_conditions(translated: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """Drops the resources and outputs whose Condition is false. CloudFormation itself ignores
    them, and so does moto on create, but moto's update_stack tries to update a changed
    resource even when its Condition is false (and fails): pruning keeps re-deploys safe."""
    conditions = evaluate_conditions(translated, parameters)
    pruned = copy.deepcopy(translated)
    for section in ("Resources", "Outputs"):
        for logical_id, item in list(pruned.get(section, {}).items()):
            cond = item.get("Condition")
            if cond is not None and not conditions[cond]:
                del pruned[section][logical_id]
    return pruned


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to: Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                if not isinstance(value, str):
                    found |= references(value[1])
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def drop_with_dependents(template: dict[str, Any], types: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """The template without resources of the given type prefixes and, transitively, without
    every resource (properties or DependsOn) and output that refers to a dropped one."""
    pruned = copy.deepcopy(template)
    resources = pruned.get("Resources", {})
    dropped = {k for k, r in resources.items() if r.get("Type", "").startswith(types)}
    changed = True
    while changed:
        changed = False
        for logical_id, resource in resources.items():
            if logical_id in dropped:
                continue
            depends = resource.get("DependsOn", [])
            depends = [depends] if isinstance(depends, str) else depends
            if (references(resource.get("Properties", {})) | set(depends)) & dropped:
                dropped.add(logical_id)
                changed = True
    for logical_id in dropped:
        del resources[logical_id]
    for key, output in list(pruned.get("Outputs", {}).items()):
        if references(output) & dropped:
            del pruned["Outputs"][key]
    # Parameters only dropped resources used (the functions' code location) would still be
    # required by CreateStack.
    used = references(pruned.get("Resources", {})) | references(pruned.get("Outputs", {})) | references(
        pruned.get("Conditions", {}))
    for name in list(pruned.get("Parameters", {})):
        if name not in used:
            del pruned["Parameters"][name]
    return pruned, sorted(dropped)


def package_cfn_code(template: dict[str, Any], params: dict[str, str], s3: Any) -> list[str]:
    """Fills the S3 code parameters of a plain CloudFormation template's functions: the bucket
    parameter becomes the local artifact bucket, and the zip of the binary named by the key's
    first path part (target/lambda/<binary>/bootstrap.zip, or a placeholder) is uploaded."""
    notes = []
    declared = template.get("Parameters", {})
    try:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        code = resource.get("Properties", {}).get("Code", {})
        bucket, key = code.get("S3Bucket"), code.get("S3Key")
        if not (isinstance(bucket, dict) and "Ref" in bucket and isinstance(key, dict) and "Ref" in key):
            raise Failure(f"{logical_id}: Code must be {{S3Bucket: Ref, S3Key: Ref}} to deploy functions locally")
        key_value = params.get(key["Ref"], str(declared.get(key["Ref"], {}).get("Default", "")))
        if not key_value:
            raise Failure(f"{logical_id}: no value for its code key parameter {key['Ref']}")
        params[bucket["Ref"]] = ARTIFACT_BUCKET
        params[key["Ref"]] = key_value
        path = ROOT / "target" / "lambda" / key_value.split("/")[0] / "bootstrap.zip"
        if path.is_file():
            body = path.read_bytes()
        else:
            body = placeholder_zip()
            notes.append(f"{logical_id}: {path.relative_to(ROOT)} not built; deployed a placeholder zip")
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key_value, Body=body)
    return notes


def evaluate_conditions(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, bool]:
    values = {**parameter_defaults(template), **parameters}
    specs = template.get("Conditions", {})
    done: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return values.get(node["Ref"], node["Ref"])
        if isinstance(node, dict) and "Condition" in node:
            return cond(node["Condition"])
        if isinstance(node, dict):
            return evaluate(node)
        return node

    def evaluate(node: Any) -> bool:
        (op, args), = node.items()
        if op == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if op == "Fn::Not":
            return not value(args[0])
        if op == "Fn::And":
            return all(value(a) for a in args)
        if op == "Fn::Or":
            return any(value(a) for a in args)
        if op == "Condition":
            return cond(args)
        raise Failure(f"unsupported condition function {op}")

    def cond(name: str) -> bool:
        if name not in done:
            done[name] = evaluate(specs[name])
        return done[name]

    for name in specs:
        cond(name)
    return done


# --------------------------------------------------------------------------- commands


def parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param takes Key=Value, not {pair!r}")
        params[key] = value
    return params


def cmd_translate(args: argparse.Namespace) -> dict[str, Any]:
    template = load_template(args.template)
    params = parse_params(args.param)
    package_code(template, args.template.parent, None)
    return translate(template, params, args.region)


# Switches of this script for a plain CloudFormation template that does not declare them (the
# SAM template's parameters of the same names), and the resource types each one drops.
CFN_SWITCHES = {"DeployFunctions": ("AWS::Lambda::Function",), "CreateSchemaRegistry": ("AWS::EventSchemas::",)}


def cmd_deploy(args: argparse.Namespace) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    check_endpoint(args.endpoint)
    plain = args.cfn_template is not None
    template = load_template(args.cfn_template if plain else args.template)
    declared = set(template.get("Parameters", {}))
    given = parse_params(args.param)
    defaults = {**LOCAL_DEFAULTS, "NamePrefix": args.stack_name.lower()[:24]}
    if plain:
        # Only the local defaults the template declares; the switches are this script's.
        switches = {k: given.pop(k, LOCAL_DEFAULTS[k]) for k in CFN_SWITCHES if k not in declared}
        defaults = {k: v for k, v in defaults.items() if k in declared}
    params = {**defaults, **given}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise Failure(f"unknown template parameters: {', '.join(unknown)}")

    extra: dict[str, str] = {}
    if "UserPoolId" in declared and not params.get("UserPoolId") and not args.no_user_pool:
        pool_id, client_id = ensure_user_pool(args.endpoint, args.region, args.stack_name)
        params["UserPoolId"] = pool_id
        extra["UserPoolClientId"] = client_id

    if plain:
        translated = template
        for switch, types in CFN_SWITCHES.items():
            if switch in switches and switches[switch] != "true":
                translated, dropped = drop_with_dependents(translated, types)
                log(f"{switch}=false: dropped {', '.join(dropped) or 'nothing'}")
        if switches.get("DeployFunctions") == "true":
            for note in package_cfn_code(translated, params, client("s3", args.endpoint, args.region)):
                log(note)
        params = {k: v for k, v in params.items() if k in translated.get("Parameters", {})}
        translated = prune_false_conditions(translated, params)
    else:
        functions = params.get("DeployFunctions", parameter_defaults(template).get("DeployFunctions")) == "true"
        s3 = client("s3", args.endpoint, args.region) if functions else None
        for note in package_code(template, args.template.parent, s3):
            log(note)
        translated = prune_false_conditions(translate(template, params, args.region), params)

    cfn = client("cloudformation", args.endpoint, args.region)
    body = json.dumps(translated, separators=(",", ":"))
    cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
    if find_stack(cfn, args.stack_name) is None:
        log(f"creating stack {args.stack_name}")
        cfn.create_stack(StackName=args.stack_name, TemplateBody=body, Parameters=cfn_params,
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    else:
        log(f"updating stack {args.stack_name}")
        try:
            cfn.update_stack(StackName=args.stack_name, TemplateBody=body, Parameters=cfn_params,
                             Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
    stack = wait(cfn, args.stack_name)
    skipped = skipped_resources(cfn, args.stack_name, translated, params)
    if skipped:
        log("moto skipped: " + ", ".join(skipped))
    out = local_queue_urls(outputs_of(stack, translated), args.endpoint, args.region)
    clash = sorted(set(out) & set(extra))
    if clash:
        raise Failure(f"template outputs clash with local keys: {clash}")
    return {**out, **extra}


def cmd_outputs(args: argparse.Namespace) -> dict[str, Any]:
    check_endpoint(args.endpoint)
    cfn = client("cloudformation", args.endpoint, args.region)
    stack = find_stack(cfn, args.stack_name)
    if stack is None:
        raise Failure(f"no stack {args.stack_name}")
    template = load_template(args.cfn_template or args.template)
    return local_queue_urls(outputs_of(stack, template), args.endpoint, args.region)


def local_queue_urls(outputs: dict[str, str], endpoint: str, region: str) -> dict[str, str]:
    """moto's CloudFormation gives a queue's Ref as https://sqs.<region>.amazonaws.com/...;
    replace every such output with the URL moto's SQS API returns for the queue (on the
    endpoint), which is what a client of the local stack must use."""
    sqs = None
    fixed = dict(outputs)
    for key, value in outputs.items():
        url = urlparse(value) if isinstance(value, str) else None
        if url is None or not (url.hostname or "").startswith("sqs.") or not url.hostname.endswith(".amazonaws.com"):
            continue
        sqs = sqs or client("sqs", endpoint, region)
        fixed[key] = sqs.get_queue_url(QueueName=url.path.rstrip("/").split("/")[-1])["QueueUrl"]
    return fixed


def cmd_delete(args: argparse.Namespace) -> dict[str, Any]:
    check_endpoint(args.endpoint)
    cfn = client("cloudformation", args.endpoint, args.region)
    if find_stack(cfn, args.stack_name) is not None:
        cfn.delete_stack(StackName=args.stack_name)
        deadline = time.monotonic() + 60
        while find_stack(cfn, args.stack_name) is not None:
            if time.monotonic() > deadline:
                raise Failure(f"stack {args.stack_name} not deleted after 60s")
            time.sleep(0.2)
    return {"deleted": args.stack_name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local_stack.py",
        description="Deploy infra/template.yaml to a moto server (the local stack).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, endpoint: bool) -> None:
        if endpoint:
            p.add_argument("--endpoint", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
            p.add_argument("--stack-name", required=True)
        p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
        p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
        if endpoint:
            p.add_argument("--cfn-template", type=Path, metavar="PATH",
                           help="a plain CloudFormation template (no SAM translation), e.g. infra/cdk/uc-pipeline.template.json")

    p = sub.add_parser("deploy", help="create or update the stack, print its outputs as JSON")
    common(p, True)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="template parameter (repeatable)")
    p.add_argument("--no-user-pool", action="store_true", help="do not create a moto user pool when UserPoolId is not given")
    p.set_defaults(run=cmd_deploy)
    p = sub.add_parser("outputs", help="print an existing stack's outputs as JSON")
    common(p, True)
    p.set_defaults(run=cmd_outputs)
    p = sub.add_parser("delete", help="delete the stack")
    common(p, True)
    p.set_defaults(run=cmd_delete)
    p = sub.add_parser("translate", help="print the translated CloudFormation template")
    common(p, False)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(run=cmd_translate)

    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except Failure as exc:
        log(f"error: {exc}")
        return 1
    except Exception as exc:  # botocore errors and the like: one line, not a traceback
        log(f"error: {type(exc).__name__}: {exc}")
        return 1
    json.dump(result, sys.stdout, indent=None if args.command != "translate" else 2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
