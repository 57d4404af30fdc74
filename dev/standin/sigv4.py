"""SigV4 verification of POST /graphql: parses the Authorization header, checks the
credential scope, session token and clock skew the way AppSync answers them, and
recomputes the signature with botocore (independent of the Rust client's aws-sigv4).
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import hmac
import re
import threading
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from .common import now_utc

SERVICE = "appsync"
MAX_SKEW = _dt.timedelta(minutes=5)
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"

MSG_NO_AUTH = "Valid authorization header not provided."
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


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
        self._clock = clock or now_utc
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
