"""The HTTP side: a threading HTTP/1.1 server whose handler answers the signed AppSync
endpoint (POST /graphql: verify, apply faults, execute) and the unsigned control API
under /_standin/.
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from graphql import FieldNode, GraphQLSyntaxError, execute
from graphql.language import OperationType

from . import faults
from .common import LOG
from .faults import RuleError
from .graphql import (
    AppSyncError,
    CompiledDocument,
    StandIn,
    create_input_ids,
    delete_input_ids,
    field_error_to_appsync,
    request_error_to_appsync,
    syntax_error_to_appsync,
    top_level_fields,
    validation_error_to_appsync,
)
from .sigv4 import AuthError, Verifier
from .state import State

MAX_BODY = 10 * 1024 * 1024

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
                    rules, seed = faults.parse_rules_request(json_body())
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
            elif name == "stats" and method == "POST":
                req = json_body()
                ids = req.get("ids") if isinstance(req, dict) else None
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise RuleError('body must be {"ids": [string, ...]}')
                self._send(200, state.stats(ids))
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
        create_ids = create_input_ids(fields, variables)
        delete_ids = delete_input_ids(fields, variables)
        # Fault rules match an id given to either mutation.
        ids = create_ids + delete_ids
        for fname in field_names:
            state.bump("operations", fname)
        for pid in create_ids:
            state.bump("createAttempts")
            state.per_id(pid, "attempts")
        for pid in delete_ids:
            state.bump("deleteAttempts")
            state.per_id(pid, "deleteAttempts")
        for pid in ids:
            state.record_trace(pid, self.headers.get("X-Amzn-Trace-Id"))

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
        status, payload, error_type = faults.render(rule, fields, parent)
        self._send(
            status,
            payload,
            error_type=error_type,
            extra_headers=rule.get("headers") or {},
            count=True,
        )


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
