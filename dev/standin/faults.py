"""Fault injection: validates the rule format of POST /_standin/faults, decides which
rules apply to a request (match by field or by the input id of createUserProfile or
deleteUserProfile, count, fraction draw)
and renders the answer an applying status/errorType rule gives.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from graphql.language.location import get_location

from .common import dynamodb_request_id
from .graphql import ERRORTYPE_MESSAGES

STATUS_FAULTS = {
    400: ("BadRequestException", "Bad request."),
    401: ("UnauthorizedException", "You are not authorized to make this call."),
    403: ("AccessDeniedException", "Access denied."),
    404: ("NotFoundException", "Not found."),
    429: ("TooManyRequestsException", "Rate exceeded"),
    500: ("InternalFailureException", "An internal failure occurred."),
    502: ("BadGatewayException", "Bad gateway."),
    503: ("ServiceUnavailableException", "Service unavailable. Please try again later."),
    504: ("GatewayTimeoutException", "Endpoint request timed out"),
}

RULE_KEYS = {
    "status", "errorType", "message", "headers", "disconnect", "latencyMs",
    "count", "fraction", "match",
}
MATCH_KEYS = {"id", "idPrefix", "idIn", "field"}


class RuleError(ValueError):
    pass


def validate_rule(raw: Any, index: int) -> dict[str, Any]:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise RuleError(f"{where} must be an object")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise RuleError(f"{where} has unknown keys: {sorted(unknown)}")
    rule = copy.deepcopy(raw)
    if "status" in rule:
        s = rule["status"]
        if not isinstance(s, int) or isinstance(s, bool) or not 100 <= s <= 599:
            raise RuleError(f"{where}.status must be an HTTP status code")
    for key in ("errorType", "message"):
        if key in rule and not isinstance(rule[key], str):
            raise RuleError(f"{where}.{key} must be a string")
    if "headers" in rule:
        h = rule["headers"]
        if not isinstance(h, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in h.items()
        ):
            raise RuleError(f"{where}.headers must be an object of strings")
    if "disconnect" in rule and not isinstance(rule["disconnect"], bool):
        raise RuleError(f"{where}.disconnect must be a boolean")
    if "latencyMs" in rule:
        v = rule["latencyMs"]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise RuleError(f"{where}.latencyMs must be a non-negative number")
    if "count" in rule:
        v = rule["count"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise RuleError(f"{where}.count must be a non-negative integer")
    if "fraction" in rule:
        v = rule["fraction"]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise RuleError(f"{where}.fraction must be a number in [0, 1]")
    if "match" in rule:
        m = rule["match"]
        if not isinstance(m, dict):
            raise RuleError(f"{where}.match must be an object")
        unknown = set(m) - MATCH_KEYS
        if unknown:
            raise RuleError(f"{where}.match has unknown keys: {sorted(unknown)}")
        for key in ("id", "idPrefix", "field"):
            if key in m and not isinstance(m[key], str):
                raise RuleError(f"{where}.match.{key} must be a string")
        if "idIn" in m and not (
            isinstance(m["idIn"], list) and all(isinstance(x, str) for x in m["idIn"])
        ):
            raise RuleError(f"{where}.match.idIn must be a list of strings")
    if not any(k in rule for k in ("status", "errorType", "latencyMs", "disconnect")):
        raise RuleError(f"{where} needs one of status, errorType, latencyMs, disconnect")
    return rule


def rule_is_terminal(rule: dict[str, Any]) -> bool:
    return "status" in rule or "errorType" in rule or bool(rule.get("disconnect"))


def rule_matches(rule: dict[str, Any], field_names: list[str], ids: list[Any]) -> bool:
    match = rule.get("match")
    if not match:
        return True
    if "field" in match and match["field"] not in field_names:
        return False
    id_keys = [k for k in ("id", "idPrefix", "idIn") if k in match]
    if not id_keys:
        return True
    for value in ids:
        if not isinstance(value, str):
            continue
        if "id" in match and value != match["id"]:
            continue
        if "idPrefix" in match and not value.startswith(match["idPrefix"]):
            continue
        if "idIn" in match and value not in match["idIn"]:
            continue
        return True
    return False


def parse_rules_request(req: Any) -> tuple[list[dict[str, Any]], int | None]:
    """The validated rules and optional seed of a POST /_standin/faults body."""
    if not isinstance(req, dict) or not isinstance(req.get("rules", []), list):
        raise RuleError('body must be {"rules": [...]}')
    seed = req.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RuleError("seed must be an integer")
    rules = [validate_rule(r, i) for i, r in enumerate(req.get("rules", []))]
    return rules, seed


# Armed rules carry their bookkeeping under "_"-prefixed keys, so the client's own keys
# can be echoed back untouched.
def arm(rule: dict[str, Any]) -> dict[str, Any]:
    return dict(rule, _remaining=rule.get("count"), _applied=0)


def _public(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rule.items() if not k.startswith("_")}


def describe(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule as GET /_standin/faults shows it."""
    d = _public(rule)
    d["remaining"] = rule["_remaining"]
    d["applied"] = rule["_applied"]
    return d


def walk(
    rules: list[dict[str, Any]],
    rng: random.Random,
    field_names: list[str],
    ids: list[Any],
    latency_ms: float,
) -> tuple[float, bool, dict[str, Any] | None]:
    """Apply the armed rules in order to one request.

    Returns (latency_ms plus the latencyMs of every applying rule, whether a rule added
    latency, the first applying terminal rule or None).  Consumes counts and fraction
    draws in place, so the caller must hold the State lock.
    """
    terminal = None
    latency_applied = False
    for rule in rules:
        if not rule_matches(rule, field_names, ids):
            continue
        if rule["_remaining"] is not None and rule["_remaining"] <= 0:
            continue
        if "fraction" in rule and not rng.random() < rule["fraction"]:
            continue
        if rule["_remaining"] is not None:
            rule["_remaining"] -= 1
        rule["_applied"] += 1
        if rule.get("latencyMs"):
            latency_ms += rule["latencyMs"]
            latency_applied = True
        if rule_is_terminal(rule):
            terminal = _public(rule)
            break
    return latency_ms, latency_applied, terminal


def fault_kind(terminal: dict[str, Any]) -> str:
    """The faultsInjected counter a terminal rule counts under."""
    if terminal.get("disconnect"):
        return "disconnect"
    if "status" in terminal:
        return f"status:{terminal['status']}"
    return f"errorType:{terminal['errorType']}"


def render(rule: dict[str, Any], fields, parent: str):
    """(status, payload, x-amzn-ErrorType or None) for a status or errorType rule.

    A status rule answers like an AWS front-end error; an errorType rule answers 200 with
    every top-level field null and one AppSync resolver error per field, as a failing
    data source would.
    """
    if "status" in rule:
        status = rule["status"]
        default_type, default_msg = STATUS_FAULTS.get(
            status, ("InjectedFaultException", f"Injected fault with HTTP status {status}.")
        )
        error_type = rule.get("errorType", default_type)
        message = rule.get("message", default_msg)
        return status, {"errors": [{"errorType": error_type, "message": message}]}, error_type
    error_type = rule["errorType"]
    data = {key: None for key, _node in fields} or None
    errors = []
    for key, node in fields or [(None, None)]:
        template = rule.get("message") or ERRORTYPE_MESSAGES.get(
            error_type, f"Injected {error_type} error."
        )
        message = template
        if not rule.get("message"):
            message = (
                template.replace("{field}", node.name.value if node is not None else "")
                .replace("{parent}", parent)
                .replace("{request_id}", dynamodb_request_id())
            )
        loc = None
        if node is not None and node.loc is not None:
            sl = get_location(node.loc.source, node.loc.start)
            loc = [{"line": sl.line, "column": sl.column, "sourceName": None}]
        errors.append(
            {
                "path": [key] if key is not None else None,
                "data": None,
                "errorType": error_type,
                "errorInfo": None,
                "locations": loc,
                "message": message,
            }
        )
    return 200, {"data": data, "errors": errors}, None
