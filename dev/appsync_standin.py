#!/usr/bin/env python3
"""Local stand-in for the AWS AppSync GraphQL endpoint (IAM / SigV4 auth).

It serves the project's AppSync-style schema (schemas/graphql/schema.graphql)
over HTTP on the loopback interface, verifies SigV4 signatures with botocore
(an implementation independent of the Rust client's aws-sigv4), keeps the
UserProfile items in memory and can inject faults.

Usage
-----
    python dev/appsync_standin.py --host 127.0.0.1 --port 0 --region us-east-1 \
        --credential AKID:SECRET[:SESSION_TOKEN] [--credential ...] \
        [--seed N] [--schema PATH] [--quiet]

Credentials may also come from the environment variable STANDIN_CREDENTIALS
(comma-separated AKID:SECRET[:TOKEN] entries), and at run time from
POST /_standin/credentials.  When it is ready the server prints exactly one
line, ``READY http://<host>:<port>/graphql``, to stdout.  SIGTERM and SIGINT
stop it cleanly (exit status 0).  Logs go to stderr and never contain e-mail
addresses (every log line is scrubbed; bodies are never logged).

POST /graphql (signed)
----------------------
Authentication, in this order (first failure answers):

* no ``Authorization`` header, or one whose scheme is not
  ``AWS4-HMAC-SHA256`` -> 401 ``UnauthorizedException``
  "Valid authorization header not provided."
* an ``AWS4-HMAC-SHA256`` header missing Credential/SignedHeaders/Signature,
  a malformed Credential, no X-Amz-Date/Date header, a malformed date, or
  ``host`` not signed -> 403 ``IncompleteSignatureException``
* credential scope terminator/date/region/service wrong -> 403
  ``InvalidSignatureException`` (the message names the expected scope)
* unknown access key id -> 403 ``UnrecognizedClientException``
  "The security token included in the request is invalid."
* session token: the credential has one and the request does not carry
  ``X-Amz-Security-Token`` equal to it among SignedHeaders, or the request
  carries one the credential does not have -> 403 ``UnrecognizedClientException``
* X-Amz-Date more than 5 minutes away from now -> 403
  ``InvalidSignatureException`` "Signature expired: ..." / "Signature not yet
  current: ..." (AWS wording)
* signature mismatch -> 403 ``InvalidSignatureException`` (AWS wording).  The
  signature is recomputed with botocore's SigV4Auth over exactly the headers in
  SignedHeaders (none dropped, none added), the exact body bytes, the URL the
  client addressed (Host header) and the received X-Amz-Date as the timestamp.
* a signed ``x-amz-content-sha256`` that is not the SHA-256 of the body -> 403
  ``InvalidSignatureException``.

After authentication: the body must be JSON with a string "query" (else 400
``MalformedHttpRequestException``); then faults apply (below); then the
document is executed with graphql-core.  Validation / syntax / variable errors
answer 200 ``{"data":null,"errors":[{"path":null,"locations":[...],
"message":"Validation error of type <Kind>: ..."}]}`` (no errorType), resolver
errors answer in AppSync's shape (path, data, errorType, errorInfo, locations
with sourceName, message).  A duplicate createUserProfile id answers
``DynamoDB:ConditionalCheckFailedException`` exactly like AppSync + DynamoDB.
listUserProfiles follows DynamoDB Scan semantics: ``limit`` (default 100)
bounds the items *scanned*, the filter applies afterwards, ``nextToken`` is
opaque.  The ``condition`` argument of createUserProfile is ignored.

Fault injection (unsigned control API under /_standin/)
-------------------------------------------------------
A rule is a JSON object with optional keys:

* ``status`` (int): answer with this HTTP status and an AppSync-like body
  (503 ServiceUnavailableException, 429 TooManyRequestsException, 500
  InternalFailureException, 502 BadGatewayException, 504
  GatewayTimeoutException, 400 BadRequestException, 401
  UnauthorizedException, 403 AccessDeniedException, 404 NotFoundException,
  other: InjectedFaultException).  With ``errorType`` as well, that errorType
  is used in the body instead.
* ``errorType`` (str) without ``status``: answer 200 with every top-level
  field null and one AppSync-shaped error per top-level field.
* ``message`` (str): overrides the default message of status/errorType faults.
* ``headers`` (object): extra response headers for status/errorType faults
  (e.g. ``{"Retry-After": "1"}``).
* ``disconnect`` (bool): close the connection without any response.
* ``latencyMs`` (number): sleep this long before answering.
* ``count`` (int): the rule applies to the next N matching requests, then
  expires (remaining count is shown by GET /_standin/faults).
* ``fraction`` (0..1): the rule applies to that share of matching requests.
  One draw from ``random.Random(seed)`` is made per matching, unexpired
  fraction rule that is evaluated.  The generator is reseeded with the
  server's --seed (or the ``seed`` given in the POST body) every time the rules
  are replaced, and on reset, so a rule set gives a reproducible sequence.
* ``match`` (object): ``id`` / ``idPrefix`` / ``idIn`` restrict the rule to
  requests containing a createUserProfile whose ``input.id`` matches (all given
  keys must hold); ``field`` restricts it to requests that select this
  top-level field (e.g. "getUserProfile").

Evaluation per authenticated request: the rules are walked in order.  A rule
"applies" when its match holds, its count is not exhausted and its fraction
draw succeeds; applying consumes one count.  Latency is cumulative: the
global latency (POST /_standin/latency) plus the latencyMs of every applying
rule up to and including the first applying rule that has status / errorType /
disconnect; that first such rule decides the answer and the walk stops there
(later rules are not evaluated: no count consumed, no draw).  Rules with only
latencyMs delay the request, which then proceeds normally.  A status,
errorType or disconnect fault never stores anything.

Control endpoints (no signature, JSON in and out):

* ``POST /_standin/faults`` ``{"rules":[...], "seed": N?}`` -> 200
  ``{"rules":[...]}`` (replaces the list); ``DELETE /_standin/faults`` clears;
  ``GET /_standin/faults`` -> ``{"rules":[{...rule..., "remaining": n|null,
  "applied": n}], "seed": N}``.  Invalid rules -> 400 ``{"error": "..."}``.
* ``POST /_standin/latency`` ``{"ms": N}`` -> ``{"ms": N}``; GET returns it.
* ``GET /_standin/profiles`` -> ``{"items":[profile, ...]}`` (insertion order).
* ``GET /_standin/stats`` -> counters, see ``State.stats``.
* ``POST /_standin/reset`` clears profiles, rules, counters, global latency and
  reseeds the generator (credentials are kept).
* ``POST /_standin/credentials``
  ``{"credentials":[{"accessKeyId","secretAccessKey","sessionToken"?}],
  "replace": false}`` adds (or replaces) credentials; GET lists the access key
  ids and whether each has a session token.
* ``GET /_standin/health`` -> 200 ``ok`` (text/plain).
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as _dt
import email.utils
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from collections import OrderedDict
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    ObjectValueNode,
    VariableNode,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.language import FragmentDefinitionNode, OperationType, Visitor, visit
from graphql.language.location import get_location
from graphql.utilities import value_from_ast_untyped

LOG = logging.getLogger("appsync-standin")

SERVICE = "appsync"
MAX_SKEW = _dt.timedelta(minutes=5)
MAX_BODY = 10 * 1024 * 1024
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "graphql" / "schema.graphql"
DEFAULT_LIST_LIMIT = 100

APPSYNC_PRELUDE = """
scalar AWSDate
scalar AWSTime
scalar AWSDateTime
scalar AWSTimestamp
scalar AWSEmail
scalar AWSJSON
scalar AWSURL
scalar AWSPhone
scalar AWSIPAddress
directive @aws_iam on OBJECT | FIELD_DEFINITION
directive @aws_api_key on OBJECT | FIELD_DEFINITION
directive @aws_oidc on OBJECT | FIELD_DEFINITION
directive @aws_lambda on OBJECT | FIELD_DEFINITION
directive @aws_cognito_user_pools(cognito_groups: [String]) on OBJECT | FIELD_DEFINITION
directive @aws_auth(cognito_groups: [String]) on FIELD_DEFINITION
directive @aws_subscribe(mutations: [String]) on FIELD_DEFINITION
"""

MSG_NO_AUTH = "Valid authorization header not provided."
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

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

ERRORTYPE_MESSAGES = {
    "Unauthorized": "Not Authorized to access {field} on type {parent}",
    "DynamoDB:ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API. "
        "(Service: DynamoDb, Status Code: 400, Request ID: {request_id})"
    ),
    "DynamoDB:ConditionalCheckFailedException": (
        "The conditional request failed (Service: DynamoDb, Status Code: 400, Request ID: {request_id})"
    ),
    "DynamoDB:ThrottlingException": (
        "Rate of requests exceeds the allowed throughput. "
        "(Service: DynamoDb, Status Code: 400, Request ID: {request_id})"
    ),
    "DynamoDB:InternalServerError": (
        "Internal server error (Service: DynamoDb, Status Code: 500, Request ID: {request_id})"
    ),
    "ExecutionTimeout": "Execution timed out.",
    "MappingTemplate": "Template transformation yielded an empty response.",
    "Lambda:Unhandled": "Unhandled exception",
}

RULE_KEYS = {
    "status", "errorType", "message", "headers", "disconnect", "latencyMs",
    "count", "fraction", "match",
}
MATCH_KEYS = {"id", "idPrefix", "idIn", "field"}

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def scrub(text: str) -> str:
    """Remove anything that looks like an e-mail address."""
    return _EMAIL_RE.sub("<redacted-email>", text)


class _ScrubFormatter(logging.Formatter):
    """Formats the whole record (message, traceback) and scrubs e-mail addresses."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def aws_datetime(moment: _dt.datetime) -> str:
    """AWSDateTime as AppSync's $util.time.nowISO8601(): milliseconds and Z."""
    moment = moment.astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dynamodb_request_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(52))


# --------------------------------------------------------------------------- SigV4


class AuthError(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class _ExactSigV4Auth(SigV4Auth):
    """botocore's SigV4 over exactly the headers present on the request.

    botocore normally drops some headers (user-agent, expect, ...) and adds
    host; the client decides SignedHeaders, so the verifier must use exactly
    that list.  The request object only carries the signed headers.
    """

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in set(k.lower() for k in request.headers.keys()):
            for value in request.headers.get_all(name):
                header_map[name] = value
        return header_map


_AUTH_PARAM_RE = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*")


def parse_authorization(value: str) -> dict[str, str]:
    """Parse 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        raise AuthError(401, "UnauthorizedException", MSG_NO_AUTH)
    params: dict[str, str] = {}
    for part in rest.split(","):
        if not part.strip():
            continue
        m = _AUTH_PARAM_RE.fullmatch(part)
        if not m:
            continue
        params[m.group(1)] = m.group(2)
    missing = []
    for name in ("Credential", "Signature", "SignedHeaders"):
        if not params.get(name):
            missing.append(f"Authorization header requires '{name}' parameter.")
    if missing:
        raise AuthError(
            403,
            "IncompleteSignatureException",
            " ".join(missing) + " Authorization=AWS4-HMAC-SHA256",
        )
    return params


def _parse_request_time(headers) -> tuple[str, _dt.datetime]:
    amz_date = headers.get("X-Amz-Date")
    if amz_date is not None:
        amz_date = amz_date.strip()
        try:
            moment = _dt.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(
                tzinfo=_dt.timezone.utc
            )
        except ValueError:
            raise AuthError(
                403,
                "IncompleteSignatureException",
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601",
            ) from None
        return amz_date, moment
    date = headers.get("Date")
    if date is not None:
        try:
            moment = email.utils.parsedate_to_datetime(date.strip())
        except (TypeError, ValueError):
            moment = None
        if moment is None:
            raise AuthError(
                403, "IncompleteSignatureException", f"Date header is not a valid HTTP date: '{date}'"
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        moment = moment.astimezone(_dt.timezone.utc)
        return moment.strftime(SIGV4_TIMESTAMP), moment
    raise AuthError(
        403,
        "IncompleteSignatureException",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=AWS4-HMAC-SHA256",
    )


class Verifier:
    """Verifies AppSync SigV4 requests against the configured credentials."""

    def __init__(
        self,
        region: str,
        credentials: dict[str, tuple[str, str | None]],
        service: str = SERVICE,
        clock=None,
    ):
        self.region = region
        self.service = service
        self._clock = clock or _now
        self._lock = threading.Lock()
        self._credentials = dict(credentials)

    def set_credentials(self, creds: dict[str, tuple[str, str | None]], replace: bool) -> None:
        with self._lock:
            if replace:
                self._credentials = dict(creds)
            else:
                self._credentials.update(creds)

    def list_credentials(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"accessKeyId": akid, "hasSessionToken": token is not None}
                for akid, (_, token) in self._credentials.items()
            ]

    def _lookup(self, akid: str):
        with self._lock:
            return self._credentials.get(akid)

    def verify(self, method: str, raw_path: str, headers, body: bytes) -> dict[str, Any]:
        """Return {'accessKeyId', 'sessionToken'} or raise AuthError.

        On a signature mismatch the AuthError carries .debug with the
        canonical request and string to sign the server computed.
        """
        authz = headers.get_all("Authorization") or []
        if not authz or not authz[0].strip():
            raise AuthError(401, "UnauthorizedException", MSG_NO_AUTH)
        params = parse_authorization(authz[0])
        amz_date, moment = _parse_request_time(headers)

        scope = params["Credential"].split("/")
        if len(scope) != 5 or not scope[0]:
            raise AuthError(
                403,
                "IncompleteSignatureException",
                "Authorization header requires 'Credential' parameter of the form "
                f"'<AccessKeyId>/<yyyymmdd>/{self.region}/{self.service}/aws4_request'. "
                "Authorization=AWS4-HMAC-SHA256",
            )
        akid, scope_date, scope_region, scope_service, terminator = scope
        expected_scope = f"{amz_date[:8]}/{self.region}/{self.service}/aws4_request"
        if terminator != "aws4_request":
            raise AuthError(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{terminator}'. Expected scope: '{expected_scope}'.",
            )
        if scope_date != amz_date[:8]:
            raise AuthError(
                403,
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )
        if scope_region != self.region:
            raise AuthError(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{scope_region}'. "
                f"Expected scope: '{expected_scope}'.",
            )
        if scope_service != self.service:
            raise AuthError(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{self.service}'. "
                f"Expected scope: '{expected_scope}'.",
            )

        signed_names = [h.strip().lower() for h in params["SignedHeaders"].split(";") if h.strip()]
        if "host" not in signed_names:
            raise AuthError(
                403,
                "IncompleteSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )

        cred = self._lookup(akid)
        if cred is None:
            raise AuthError(403, "UnrecognizedClientException", MSG_BAD_TOKEN)
        secret, token = cred
        sent_tokens = headers.get_all("X-Amz-Security-Token") or []
        if token is not None:
            if (
                len(sent_tokens) != 1
                or "x-amz-security-token" not in signed_names
                or not hmac.compare_digest(sent_tokens[0].strip().encode(), token.encode())
            ):
                raise AuthError(403, "UnrecognizedClientException", MSG_BAD_TOKEN)
        elif sent_tokens:
            raise AuthError(403, "UnrecognizedClientException", MSG_BAD_TOKEN)

        now = self._clock()
        if moment < now - MAX_SKEW:
            raise AuthError(
                403,
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than "
                f"{(now - MAX_SKEW).strftime(SIGV4_TIMESTAMP)} "
                f"({now.strftime(SIGV4_TIMESTAMP)} - 5 min.)",
            )
        if moment > now + MAX_SKEW:
            raise AuthError(
                403,
                "InvalidSignatureException",
                f"Signature not yet current: {amz_date} is still later than "
                f"{(now + MAX_SKEW).strftime(SIGV4_TIMESTAMP)} "
                f"({now.strftime(SIGV4_TIMESTAMP)} + 5 min.)",
            )

        host = headers.get("Host")
        if not host:
            raise AuthError(
                403,
                "IncompleteSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )
        signed_headers = HTTPHeaders()
        for name in signed_names:
            for value in headers.get_all(name) or []:
                signed_headers[name] = value
        request = AWSRequest(
            method=method,
            url=f"http://{host.strip()}{raw_path}",
            data=body,
        )
        request.headers = signed_headers
        request.context["timestamp"] = amz_date
        signer = _ExactSigV4Auth(Credentials(akid, secret, token), self.service, self.region)
        canonical = signer.canonical_request(request)
        to_sign = signer.string_to_sign(request, canonical)
        expected = signer.signature(to_sign, request)
        if not hmac.compare_digest(expected.encode(), params["Signature"].strip().encode()):
            err = AuthError(403, "InvalidSignatureException", MSG_BAD_SIGNATURE)
            err.debug = {"canonicalRequest": canonical, "stringToSign": to_sign}
            raise err
        if "x-amz-content-sha256" in signed_names:
            claimed = (headers.get("X-Amz-Content-SHA256") or "").strip()
            if claimed != hashlib.sha256(body).hexdigest():
                raise AuthError(
                    403,
                    "InvalidSignatureException",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                )
        return {"accessKeyId": akid, "sessionToken": token}


# --------------------------------------------------------------------------- GraphQL


class AppSyncError(Exception):
    """A resolver error rendered in AppSync's shape."""

    def __init__(self, error_type: str, message: str, data: Any = None, error_info: Any = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.data = data
        self.error_info = error_info


class _PathVisitor(Visitor):
    """Maps every node inside a field to the 'a/b/c' field path (graphql-java style)."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.paths: dict[int, str] = {}

    def enter(self, node, *_args):
        if isinstance(node, FieldNode):
            self.stack.append(node.name.value)
        if self.stack:
            self.paths[id(node)] = "/".join(self.stack)

    def leave(self, node, *_args):
        if isinstance(node, FieldNode):
            self.stack.pop()


_VALIDATION_PATTERNS: list[tuple[re.Pattern, Any]] = [
    (
        re.compile(r"Cannot query field '([^']+)' on type '([^']+)'\."),
        lambda m: ("FieldUndefined", f"Field '{m[1]}' in type '{m[2]}' is undefined"),
    ),
    (
        re.compile(r"Unknown argument '([^']+)' on field '([^']+)'\."),
        lambda m: ("UnknownArgument", f"Unknown field argument {m[1]}"),
    ),
    (
        re.compile(r"Unknown argument '([^']+)' on directive '([^']+)'\."),
        lambda m: ("UnknownDirective", f"Unknown directive argument {m[1]}"),
    ),
    (
        re.compile(r"Field '([^']+)' argument '([^']+)' of type '([^']+)' is required"),
        lambda m: ("MissingFieldArgument", f"Missing field argument {m[2]}"),
    ),
    (
        re.compile(r"Variable '\$([^']+)' of type '([^']+)' used in position expecting type '([^']+)'\."),
        lambda m: (
            "VariableTypeMismatch",
            f"Variable type '{m[2]}' doesn't match expected type '{m[3]}'",
        ),
    ),
    (re.compile(r"Unknown type '([^']+)'\."), lambda m: ("UnknownType", f"Unknown type {m[1]}")),
    (
        re.compile(r"Field '([^']+)' of type '([^']+)' must have a selection of subfields"),
        lambda m: (
            "SubSelectionRequired",
            f"Sub selection required for type {m[2].strip('[]!')} of field {m[1]}",
        ),
    ),
    (
        re.compile(r"Field '([^']+)' must not have a selection since type '([^']+)' has no subfields\."),
        lambda m: (
            "SubSelectionNotAllowed",
            f"Sub selection not allowed on leaf type {m[2].strip('[]!')} of field {m[1]}",
        ),
    ),
    (
        re.compile(r"Variable '\$([^']+)' is not defined"),
        lambda m: ("UndefinedVariable", f"Undefined variable {m[1]}"),
    ),
    (
        re.compile(r"Variable '\$([^']+)' is never used"),
        lambda m: ("UnusedVariable", f"Unused variable {m[1]}"),
    ),
    (
        re.compile(r"Variable '\$([^']+)' cannot be non-input type '([^']+)'\."),
        lambda m: ("NonInputTypeOnVariable", f"Input type {m[2]} is non-input type"),
    ),
    (
        re.compile(r"There can be only one variable named '\$([^']+)'\."),
        lambda m: ("DuplicateVariableName", f"There can be only one variable named {m[1]}"),
    ),
    (
        re.compile(r"There can be only one argument named '([^']+)'\."),
        lambda m: ("DuplicateArgumentNames", f"There can be only one argument named {m[1]}"),
    ),
    (
        re.compile(r"There can be only one operation named '([^']+)'\."),
        lambda m: ("DuplicateOperationName", f"There can be only one operation named {m[1]}"),
    ),
    (
        re.compile(r"This anonymous operation must be the only defined operation\."),
        lambda m: ("LoneAnonymousOperationViolation", "Anonymous operations must be the only defined operation"),
    ),
    (
        re.compile(r"Unknown fragment '([^']+)'\."),
        lambda m: ("UndefinedFragment", f"Undefined fragment {m[1]}"),
    ),
    (
        re.compile(r"Fragment '([^']+)' is never used\."),
        lambda m: ("UnusedFragment", f"Unused fragment {m[1]}"),
    ),
    (
        re.compile(r"Unknown directive '@?([^']+)'\."),
        lambda m: ("UnknownDirective", f"Unknown directive {m[1]}"),
    ),
    (
        re.compile(r"Fields '([^']+)' conflict because"),
        lambda m: ("FieldsConflict", m.string.rstrip(".")),
    ),
    (
        re.compile(r"Fragment .* cannot be spread here"),
        lambda m: ("InvalidFragmentType", m.string.rstrip(".")),
    ),
    (
        re.compile(r"The '([^']+)' definition is not executable\."),
        lambda m: ("NonExecutableDefinition", f"Type '{m[1]}' definition should not be present in a query"),
    ),
    (
        re.compile(r"Schema does not define the required query root type|Schema is not configured"),
        lambda m: ("UnknownOperation", m.string.rstrip(".")),
    ),
    (
        re.compile(
            r"(Expected value of type|Field '[^']+' of required type|Field '[^']+' is not defined by type"
            r"|String cannot represent|Int cannot represent|ID cannot represent|Boolean cannot represent"
            r"|Float cannot represent|Enum '[^']+' cannot represent)"
        ),
        lambda m: ("WrongType", m.string.rstrip(".")),
    ),
]


def _locations(error: GraphQLError) -> list[dict[str, Any]] | None:
    if not error.locations:
        return None
    return [{"line": loc.line, "column": loc.column, "sourceName": None} for loc in error.locations]


def validation_error_to_appsync(error: GraphQLError, paths: dict[int, str]) -> dict[str, Any]:
    message = error.message
    # graphql-core adds "Did you mean ...?" suggestions; graphql-java does not.
    message = re.sub(r"\s*Did you mean .*\?$", "", message)
    kind, text = "ValidationError", message.rstrip(".")
    for pattern, render in _VALIDATION_PATTERNS:
        m = pattern.search(message)
        if m:
            kind, text = render(m)
            break
    field_path = None
    for node in reversed(error.nodes or []):
        field_path = paths.get(id(node))
        if field_path:
            break
    suffix = f" @ '{field_path}'" if field_path else ""
    return {
        "path": None,
        "locations": _locations(error),
        "message": f"Validation error of type {kind}: {text}{suffix}",
    }


def syntax_error_to_appsync(error: GraphQLSyntaxError) -> dict[str, Any]:
    desc = getattr(error, "description", None) or error.message
    loc = error.locations[0] if error.locations else None
    where = f" at line {loc.line} column {loc.column}" if loc else ""
    return {
        "path": None,
        "locations": _locations(error),
        "message": f"Invalid Syntax : {desc.rstrip('.')}{where}",
    }


def request_error_to_appsync(error: GraphQLError) -> dict[str, Any]:
    """Errors raised before execution starts (variable coercion, operation choice)."""
    msg = error.message
    m = re.match(r"Variable '\$([^']+)' of required type '([^']+)' was not provided\.", msg)
    if m:
        msg = f"Variable '{m[1]}' has coerced Null value for NonNull type '{m[2]}'"
    else:
        m = re.match(r"Variable '\$([^']+)' of non-null type '([^']+)' must not be null\.", msg)
        if m:
            msg = f"Variable '{m[1]}' has coerced Null value for NonNull type '{m[2]}'"
        else:
            m = re.match(r"Variable '\$([^']+)' got invalid value (.*?); (.*)$", msg, re.S)
            if m:
                msg = f"Variable '{m[1]}' has an invalid value: {m[3].rstrip('.')}"
            else:
                m = re.match(r"Unknown operation named '([^']+)'\.", msg)
                if m:
                    msg = f"Unknown operation named '{m[1]}'."
    return {"path": None, "locations": _locations(error), "message": msg}


def field_error_to_appsync(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    if isinstance(original, AppSyncError):
        error_type, data, info, message = (
            original.error_type, original.data, original.error_info, original.message
        )
    else:
        error_type, data, info, message = None, None, None, error.message
        if original is not None:
            LOG.error("resolver failure at %s: %r", error.path, original)
    return {
        "path": list(error.path) if error.path else None,
        "data": data,
        "errorType": error_type,
        "errorInfo": info,
        "locations": _locations(error),
        "message": message,
    }


class CompiledDocument:
    __slots__ = ("document", "errors", "paths")

    def __init__(self, document, errors, paths):
        self.document = document
        self.errors = errors
        self.paths = paths


def top_level_fields(document, operation_name: str | None):
    """Return (operation, [(response_key, FieldNode)]) for the selected operation."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    op = None
    if operation_name:
        op = next((o for o in operations if o.name and o.name.value == operation_name), None)
    elif len(operations) == 1:
        op = operations[0]
    if op is None:
        return None, []
    out: list[tuple[str, FieldNode]] = []
    seen_fragments: set[str] = set()

    def walk(selection_set):
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append(((sel.alias or sel.name).value, sel))
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in fragments and name not in seen_fragments:
                    seen_fragments.add(name)
                    walk(fragments[name].selection_set)

    walk(op.selection_set)
    return op, out


def create_input_ids(fields, variables: dict[str, Any]) -> list[Any]:
    """input.id of every createUserProfile field (None when absent/unknown)."""
    ids = []
    for _key, node in fields:
        if node.name.value != "createUserProfile":
            continue
        value = None
        for arg in node.arguments or []:
            if arg.name.value != "input":
                continue
            if isinstance(arg.value, VariableNode):
                value = variables.get(arg.value.name.value)
            elif isinstance(arg.value, ObjectValueNode):
                try:
                    value = value_from_ast_untyped(arg.value, variables)
                except Exception:  # noqa: BLE001 - best effort for matching only
                    value = None
        ids.append(value.get("id") if isinstance(value, dict) else None)
    return ids


# --------------------------------------------------------------------------- state


class RuleError(ValueError):
    pass


def _validate_rule(raw: Any, index: int) -> dict[str, Any]:
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


def _rule_is_terminal(rule: dict[str, Any]) -> bool:
    return "status" in rule or "errorType" in rule or bool(rule.get("disconnect"))


def _rule_matches(rule: dict[str, Any], field_names: list[str], ids: list[Any]) -> bool:
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


class State:
    def __init__(self, seed: int):
        self.seed = seed
        self.lock = threading.RLock()
        self.profiles: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.rules: list[dict[str, Any]] = []
        self.rng = random.Random(seed)
        self.latency_ms: float = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.counters: dict[str, Any] = {
            "requests": 0,
            "authenticated": 0,
            "authFailures": {},
            "sessionTokenRequests": 0,
            "faultsInjected": {},
            "createAttempts": 0,
            "created": 0,
            "duplicates": 0,
            "operations": {},
            "responses": {},
            "perId": {},
            "lastAuthFailure": None,
        }

    def reset(self) -> None:
        with self.lock:
            self.profiles.clear()
            self.rules = []
            self.rng = random.Random(self.seed)
            self.latency_ms = 0
            self._reset_counters()

    # -- counters
    def bump(self, key: str, sub: str | None = None, n: int = 1) -> None:
        with self.lock:
            if sub is None:
                self.counters[key] += n
            else:
                d = self.counters[key]
                d[sub] = d.get(sub, 0) + n

    def per_id(self, profile_id: Any, key: str) -> None:
        if not isinstance(profile_id, str):
            return
        with self.lock:
            entry = self.counters["perId"].setdefault(
                profile_id, {"attempts": 0, "created": 0, "duplicates": 0, "faulted": 0}
            )
            entry[key] += 1

    def stats(self) -> dict[str, Any]:
        """Counters as JSON.

        {"requests": n,               # every POST /graphql
         "authenticated": n,          # requests that passed SigV4
         "authFailures": {errorType: n},
         "sessionTokenRequests": n,   # authenticated with a session-token credential
         "faultsInjected": {"status:503": n, "errorType:<T>": n, "latency": n, "disconnect": n},
         "createAttempts": n,         # createUserProfile fields in authenticated requests
                                      #   with a valid document (faulted ones included)
         "created": n, "duplicates": n,
         "operations": {topLevelField: n},
         "responses": {"200": n, ...},
         "perId": {id: {"attempts", "created", "duplicates", "faulted"}},
         "profiles": n,
         "latencyMs": n,
         "lastAuthFailure": null | {"errorType", "message", "canonicalRequest"?, "stringToSign"?}}
        """
        with self.lock:
            out = copy.deepcopy(self.counters)
            out["profiles"] = len(self.profiles)
            out["latencyMs"] = self.latency_ms
            return out

    # -- faults
    def set_rules(self, rules: list[dict[str, Any]], seed: int | None) -> None:
        with self.lock:
            self.rules = [dict(r, _remaining=r.get("count"), _applied=0) for r in rules]
            self.rng = random.Random(self.seed if seed is None else seed)
            self._rules_seed = self.seed if seed is None else seed

    def describe_rules(self) -> dict[str, Any]:
        with self.lock:
            rules = []
            for r in self.rules:
                d = {k: v for k, v in r.items() if not k.startswith("_")}
                d["remaining"] = r["_remaining"]
                d["applied"] = r["_applied"]
                rules.append(d)
            return {"rules": rules, "seed": getattr(self, "_rules_seed", self.seed)}

    def decide_faults(self, field_names: list[str], ids: list[Any]):
        """Return (total_latency_seconds, terminal_rule_or_None)."""
        with self.lock:
            latency = self.latency_ms
            terminal = None
            latency_applied = False
            for rule in self.rules:
                if not _rule_matches(rule, field_names, ids):
                    continue
                if rule["_remaining"] is not None and rule["_remaining"] <= 0:
                    continue
                if "fraction" in rule and not self.rng.random() < rule["fraction"]:
                    continue
                if rule["_remaining"] is not None:
                    rule["_remaining"] -= 1
                rule["_applied"] += 1
                if rule.get("latencyMs"):
                    latency += rule["latencyMs"]
                    latency_applied = True
                if _rule_is_terminal(rule):
                    terminal = {k: v for k, v in rule.items() if not k.startswith("_")}
                    break
            fi = self.counters["faultsInjected"]
            if latency_applied:
                fi["latency"] = fi.get("latency", 0) + 1
            if terminal is not None:
                if terminal.get("disconnect"):
                    kind = "disconnect"
                elif "status" in terminal:
                    kind = f"status:{terminal['status']}"
                else:
                    kind = f"errorType:{terminal['errorType']}"
                fi[kind] = fi.get(kind, 0) + 1
            return latency / 1000.0, terminal


class StandIn:
    """The AppSync behaviour: schema, store, resolvers."""

    def __init__(self, schema_sdl: str, state: State):
        self.state = state
        self.schema = build_schema(APPSYNC_PRELUDE + "\n" + schema_sdl)
        mutation = self.schema.mutation_type
        query = self.schema.query_type
        mutation.fields["createUserProfile"].resolve = self._create_user_profile
        query.fields["getUserProfile"].resolve = self._get_user_profile
        query.fields["listUserProfiles"].resolve = self._list_user_profiles
        self._compile = lru_cache(maxsize=256)(self._compile_uncached)

    def _compile_uncached(self, query: str):
        try:
            document = parse(query)
        except GraphQLSyntaxError as e:
            return e
        errors = validate(self.schema, document)
        paths: dict[int, str] = {}
        if errors:
            pv = _PathVisitor()
            visit(document, pv)
            paths = pv.paths
        return CompiledDocument(document, errors, paths)

    def compile(self, query: str):
        return self._compile(query)

    # -- resolvers
    def _create_user_profile(self, _root, _info, input, condition=None):  # noqa: A002
        profile_id = input.get("id")
        if profile_id is None:
            profile_id = str(uuid.uuid4())
        if profile_id == "":
            raise AppSyncError(
                "DynamoDB:DynamoDbException",
                "One or more parameter values are not valid. The AttributeValue for a key "
                "attribute cannot contain an empty string value. Key: id "
                f"(Service: DynamoDb, Status Code: 400, Request ID: {dynamodb_request_id()})",
            )
        now = aws_datetime(_now())
        item = {
            "__typename": "UserProfile",
            "id": profile_id,
            "email": input.get("email"),
            "profileOwner": input.get("profileOwner"),
            "createdAt": now,
            "updatedAt": now,
        }
        st = self.state
        with st.lock:
            if profile_id in st.profiles:
                st.counters["duplicates"] += 1
                st.per_id(profile_id, "duplicates")
                duplicate = True
            else:
                st.profiles[profile_id] = item
                st.counters["created"] += 1
                st.per_id(profile_id, "created")
                duplicate = False
        if duplicate:
            raise AppSyncError(
                "DynamoDB:ConditionalCheckFailedException",
                ERRORTYPE_MESSAGES["DynamoDB:ConditionalCheckFailedException"].format(
                    request_id=dynamodb_request_id()
                ),
            )
        return dict(item)

    def _get_user_profile(self, _root, _info, id):  # noqa: A002
        with self.state.lock:
            item = self.state.profiles.get(id)
            return dict(item) if item else None

    def _list_user_profiles(self, _root, _info, filter=None, limit=None, nextToken=None):  # noqa: A002
        start = 0
        if nextToken is not None:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(nextToken.encode()).decode())
                start = int(decoded["offset"])
                if start < 0:
                    raise ValueError
            except Exception:  # noqa: BLE001
                raise AppSyncError(
                    "DynamoDB:DynamoDbException",
                    "Invalid pagination token given. "
                    f"(Service: DynamoDb, Status Code: 400, Request ID: {dynamodb_request_id()})",
                ) from None
        if limit is None:
            limit = DEFAULT_LIST_LIMIT
        if limit <= 0:
            raise AppSyncError(
                "DynamoDB:DynamoDbException",
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: "
                "Member must have value greater than or equal to 1 "
                f"(Service: DynamoDb, Status Code: 400, Request ID: {dynamodb_request_id()})",
            )
        with self.state.lock:
            items = list(self.state.profiles.values())
        scanned = items[start:start + limit]
        end = start + len(scanned)
        out = [dict(i) for i in scanned if _filter_matches(filter, i)]
        token = None
        if end < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode()
        return {"items": out, "nextToken": token}


def _cond_matches(cond: dict[str, Any] | None, value: Any) -> bool:
    if not cond:
        return True
    for op, arg in cond.items():
        if arg is None:
            continue
        if op == "eq" and value != arg:
            return False
        if op == "ne" and value == arg:
            return False
        if op == "attributeExists" and (value is not None) != arg:
            return False
        if op in ("le", "lt", "ge", "gt", "beginsWith", "contains", "notContains", "between"):
            if not isinstance(value, str):
                return False
            if op == "le" and not value <= arg:
                return False
            if op == "lt" and not value < arg:
                return False
            if op == "ge" and not value >= arg:
                return False
            if op == "gt" and not value > arg:
                return False
            if op == "beginsWith" and not value.startswith(arg):
                return False
            if op == "contains" and arg not in value:
                return False
            if op == "notContains" and arg in value:
                return False
            if op == "between" and not (len(arg) == 2 and arg[0] <= value <= arg[1]):
                return False
    return True


def _filter_matches(flt: dict[str, Any] | None, item: dict[str, Any]) -> bool:
    if not flt:
        return True
    for key, cond in flt.items():
        if cond is None:
            continue
        if key == "and":
            if not all(_filter_matches(c, item) for c in cond):
                return False
        elif key == "or":
            if not any(_filter_matches(c, item) for c in cond):
                return False
        elif key == "not":
            if _filter_matches(cond, item):
                return False
        elif not _cond_matches(cond, item.get(key)):
            return False
    return True


# --------------------------------------------------------------------------- HTTP


class _Disconnect(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: headers and body are written separately, and with Nagle's algorithm the body
    # waits for the client's delayed ACK (~40 ms) on kept-alive connections. AppSync has no
    # such stall.
    disable_nagle_algorithm = True
    server_version = "AppSyncStandIn/1.0"
    sys_version = ""

    # ---- plumbing
    @property
    def app(self) -> "StandInServer":
        return self.server  # type: ignore[return-value]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOG.info("%s %s", self.address_string(), format % args)

    def log_request(self, code="-", size="-") -> None:
        pass  # access lines are logged by _send with more detail

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(n)

    def _send(
        self,
        status: int,
        payload: Any,
        *,
        error_type: str | None = None,
        extra_headers: dict[str, str] | None = None,
        content_type: str = "application/json;charset=UTF-8",
        count: bool = False,
    ) -> None:
        if isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        if count:
            self.app.state.bump("responses", str(status))
        elapsed = (time.monotonic() - getattr(self, "_t0", time.monotonic())) * 1000
        if not self.app.quiet:
            LOG.info(
                '%s "%s %s" %d%s %.1fms',
                self.client_address[0],
                self.command,
                urlsplit(self.path).path,
                status,
                f" {error_type}" if error_type else "",
                elapsed,
            )

    def _aws_error(self, status: int, error_type: str, message: str, **kw) -> None:
        self._send(
            status,
            {"errors": [{"errorType": error_type, "message": message}]},
            error_type=error_type,
            **kw,
        )

    def _dispatch(self, method: str) -> None:
        self._t0 = time.monotonic()
        path = urlsplit(self.path).path
        try:
            if path == "/graphql":
                if method == "POST":
                    self._graphql()
                else:
                    self._aws_error(
                        405, "MethodNotAllowedException", f"Method {method} is not allowed on /graphql."
                    )
            elif path.startswith("/_standin/"):
                self._control(method, path[len("/_standin/"):])
            else:
                self._aws_error(404, "NotFoundException", "Not found.")
        except _Disconnect:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001
            LOG.exception("unhandled error on %s %s", method, path)
            self.close_connection = True
            try:
                self._aws_error(500, "InternalFailureException", "An internal failure occurred.")
            except Exception:  # noqa: BLE001
                pass

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    # ---- control API
    def _control(self, method: str, name: str) -> None:
        state = self.app.state
        try:
            body = self._read_body() if method in ("POST", "PUT", "DELETE") else b""
        except ValueError:
            self.close_connection = True
            self._send(400, {"error": "unreadable body"})
            return

        def json_body() -> Any:
            if not body.strip():
                return {}
            return json.loads(body)

        try:
            if name == "health" and method == "GET":
                self._send(200, "ok", content_type="text/plain; charset=utf-8")
            elif name == "faults":
                if method == "GET":
                    self._send(200, state.describe_rules())
                elif method == "DELETE":
                    state.set_rules([], None)
                    self._send(200, state.describe_rules())
                elif method in ("POST", "PUT"):
                    req = json_body()
                    if not isinstance(req, dict) or not isinstance(req.get("rules", []), list):
                        raise RuleError('body must be {"rules": [...]}')
                    seed = req.get("seed")
                    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                        raise RuleError("seed must be an integer")
                    rules = [_validate_rule(r, i) for i, r in enumerate(req.get("rules", []))]
                    state.set_rules(rules, seed)
                    self._send(200, state.describe_rules())
                else:
                    self._send(405, {"error": "method not allowed"})
            elif name == "latency":
                if method == "GET":
                    self._send(200, {"ms": state.latency_ms})
                elif method in ("POST", "PUT"):
                    req = json_body()
                    ms = req.get("ms") if isinstance(req, dict) else None
                    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or ms < 0:
                        raise RuleError("ms must be a non-negative number")
                    with state.lock:
                        state.latency_ms = ms
                    self._send(200, {"ms": ms})
                else:
                    self._send(405, {"error": "method not allowed"})
            elif name == "profiles" and method == "GET":
                with state.lock:
                    items = [dict(p) for p in state.profiles.values()]
                self._send(200, {"items": items})
            elif name == "stats" and method == "GET":
                self._send(200, state.stats())
            elif name == "reset" and method == "POST":
                state.reset()
                self._send(200, {"ok": True})
            elif name == "credentials":
                if method == "GET":
                    self._send(200, {"credentials": self.app.verifier.list_credentials()})
                elif method in ("POST", "PUT"):
                    req = json_body()
                    creds = {}
                    entries = req.get("credentials") if isinstance(req, dict) else None
                    if not isinstance(entries, list):
                        raise RuleError('body must be {"credentials": [...]}')
                    for c in entries:
                        if not isinstance(c, dict) or not isinstance(c.get("accessKeyId"), str) \
                                or not isinstance(c.get("secretAccessKey"), str):
                            raise RuleError("each credential needs accessKeyId and secretAccessKey")
                        tok = c.get("sessionToken")
                        if tok is not None and not isinstance(tok, str):
                            raise RuleError("sessionToken must be a string")
                        creds[c["accessKeyId"]] = (c["secretAccessKey"], tok or None)
                    self.app.verifier.set_credentials(creds, bool(req.get("replace")))
                    self._send(200, {"credentials": self.app.verifier.list_credentials()})
                else:
                    self._send(405, {"error": "method not allowed"})
            else:
                self._send(404, {"error": f"unknown control endpoint {method} /_standin/{name}"})
        except (RuleError, json.JSONDecodeError, UnicodeDecodeError) as e:
            self._send(400, {"error": str(e)})

    # ---- AppSync endpoint
    def _graphql(self) -> None:
        app = self.app
        state = app.state
        state.bump("requests")
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._aws_error(
                400, "MalformedHttpRequestException", "Unable to read the request body.", count=True
            )
            return

        try:
            raw_path = self.path if self.path.startswith("/") else urlsplit(self.path).path
            identity = app.verifier.verify("POST", raw_path, self.headers, body)
        except AuthError as e:
            with state.lock:
                fails = state.counters["authFailures"]
                fails[e.error_type] = fails.get(e.error_type, 0) + 1
                state.counters["lastAuthFailure"] = {
                    "errorType": e.error_type,
                    "message": e.message,
                    **getattr(e, "debug", {}),
                }
            if getattr(e, "debug", None) and not app.quiet:
                LOG.info("signature mismatch; server canonical request:\n%s", e.debug["canonicalRequest"])
            self._aws_error(e.status, e.error_type, e.message, count=True)
            return
        state.bump("authenticated")
        if identity["sessionToken"] is not None:
            state.bump("sessionTokenRequests")

        try:
            req = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._aws_error(
                400, "MalformedHttpRequestException", "Unable to parse the JSON document.", count=True
            )
            return
        if not isinstance(req, dict) or not isinstance(req.get("query"), str):
            self._aws_error(
                400, "MalformedHttpRequestException", "Unable to parse GraphQL query.", count=True
            )
            return
        variables = req.get("variables")
        if variables is None:
            variables = {}
        op_name = req.get("operationName")
        if not isinstance(variables, dict) or (op_name is not None and not isinstance(op_name, str)):
            self._aws_error(
                400, "MalformedHttpRequestException", "Unable to parse GraphQL query.", count=True
            )
            return

        compiled = app.standin.compile(req["query"])
        fields: list[tuple[str, FieldNode]] = []
        op = None
        if isinstance(compiled, CompiledDocument) and not compiled.errors:
            # Only documents that would execute count as operations / create attempts and can
            # be matched by id; faults without "match" also hit invalid documents.
            op, fields = top_level_fields(compiled.document, op_name)
        field_names = [node.name.value for _k, node in fields]
        ids = create_input_ids(fields, variables)
        for fname in field_names:
            state.bump("operations", fname)
        for pid in ids:
            state.bump("createAttempts")
            state.per_id(pid, "attempts")

        latency, fault = state.decide_faults(field_names, ids)
        if latency > 0:
            time.sleep(latency)
        if fault is not None:
            for pid in ids:
                state.per_id(pid, "faulted")
            parent = "Mutation" if op is not None and op.operation == OperationType.MUTATION else "Query"
            self._answer_fault(fault, fields, parent)
            return

        if isinstance(compiled, GraphQLSyntaxError):
            self._send(200, {"data": None, "errors": [syntax_error_to_appsync(compiled)]}, count=True)
            return
        if compiled.errors:
            errors = [validation_error_to_appsync(e, compiled.paths) for e in compiled.errors]
            self._send(200, {"data": None, "errors": errors}, count=True)
            return

        result = execute(
            app.standin.schema,
            compiled.document,
            variable_values=variables,
            operation_name=op_name,
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            out = []
            for err in result.errors:
                if err.path is None and not isinstance(err.original_error, AppSyncError):
                    out.append(request_error_to_appsync(err))
                else:
                    out.append(field_error_to_appsync(err))
            payload["errors"] = out
        self._send(200, payload, count=True)

    def _answer_fault(self, rule: dict[str, Any], fields, parent: str) -> None:
        if rule.get("disconnect"):
            self.app.state.bump("responses", "disconnect")
            if not self.app.quiet:
                LOG.info('%s "POST /graphql" injected disconnect', self.client_address[0])
            raise _Disconnect()
        headers = rule.get("headers") or {}
        if "status" in rule:
            status = rule["status"]
            default_type, default_msg = STATUS_FAULTS.get(
                status, ("InjectedFaultException", f"Injected fault with HTTP status {status}.")
            )
            error_type = rule.get("errorType", default_type)
            message = rule.get("message", default_msg)
            self._aws_error(status, error_type, message, extra_headers=headers, count=True)
            return
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
        self._send(200, {"data": data, "errors": errors}, extra_headers=headers, count=True)


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, state: State, standin: StandIn, verifier: Verifier, quiet: bool):
        self.state = state
        self.standin = standin
        self.verifier = verifier
        self.quiet = quiet
        super().__init__(address, Handler)


# --------------------------------------------------------------------------- CLI


def parse_credential(spec: str) -> tuple[str, tuple[str, str | None]]:
    parts = spec.strip().split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("credential must be AKID:SECRET[:SESSION_TOKEN]")
    token = parts[2] if len(parts) == 3 and parts[2] else None
    return parts[0], (parts[1], token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local AppSync (IAM/SigV4) stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--credential", action="append", default=[], metavar="AKID:SECRET[:SESSION_TOKEN]"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schema", default=str(DEFAULT_SCHEMA))
    parser.add_argument("--quiet", action="store_true", help="no per-request access log lines")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubFormatter("%(asctime)s appsync-standin %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False

    credentials: dict[str, tuple[str, str | None]] = {}
    specs = list(args.credential)
    env = os.environ.get("STANDIN_CREDENTIALS", "")
    specs += [s for s in env.split(",") if s.strip()]
    try:
        for spec in specs:
            akid, cred = parse_credential(spec)
            credentials[akid] = cred
    except ValueError as e:
        parser.error(str(e))

    schema_sdl = Path(args.schema).read_text(encoding="utf-8")
    state = State(args.seed)
    standin = StandIn(schema_sdl, state)
    verifier = Verifier(args.region, credentials)
    server = StandInServer((args.host, args.port), state, standin, verifier, args.quiet)
    host, port = server.server_address[:2]
    shown_host = f"[{host}]" if ":" in host else host

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    LOG.info(
        "serving region=%s credentials=%s seed=%d",
        args.region,
        ",".join(sorted(credentials)) or "(none)",
        args.seed,
    )
    print(f"READY http://{shown_host}:{port}/graphql", flush=True)
    while not stop.wait(0.5):
        pass
    LOG.info("shutting down")
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
