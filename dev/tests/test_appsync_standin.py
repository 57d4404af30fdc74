"""Tests for the local AppSync stand-in (dev/standin/, launched by dev/appsync_standin.py).

The server runs as a subprocess on 127.0.0.1 (port 0); every process a test
starts is stopped by a fixture finalizer.  Requests are signed with botocore's
SigV4Auth at the real current time (or a patched clock for skew tests).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "dev" / "appsync_standin.py"
CREATE_DOC = (ROOT / "schemas" / "graphql" / "createUserProfile.graphql").read_text()
# The worker's deletion and existence documents (issue 22).
DELETE_DOC = (ROOT / "schemas" / "graphql" / "deleteUserProfile.graphql").read_text()
WORKER_GET_DOC = (ROOT / "schemas" / "graphql" / "getUserProfile.graphql").read_text()
REGION = "us-east-1"
SEED = 7

PLAIN = Credentials("AKIDPLAINTEST", "plain/secret+key")
TEMP = Credentials("ASIATEMPTEST", "temp/secret+key", "FwoGZXIvYXdzEBYaDTemporaryToken==")

SIG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
GET_DOC = "query Get($id: ID!) { getUserProfile(id: $id) { id email profileOwner createdAt __typename } }"
LIST_DOC = (
    "query List($filter: ModelUserProfileFilterInput, $limit: Int, $nextToken: String) {"
    " listUserProfiles(filter: $filter, limit: $limit, nextToken: $nextToken) {"
    " items { id profileOwner } nextToken } }"
)


# --------------------------------------------------------------------------- process


def start_server(log_path: Path, *extra: str, env: dict | None = None, timeout: float = 15.0):
    cmd = [sys.executable, str(SERVER), "--host", "127.0.0.1", "--port", "0", "--region", REGION, *extra]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env
    )
    log.close()
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.decode())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        stop_server(proc)
        raise RuntimeError(f"stand-in not ready in {timeout}s: {log_path.read_text()}")
    if line is None or not line.startswith("READY "):
        stop_server(proc)
        raise RuntimeError(f"unexpected stand-in output {line!r}: {log_path.read_text()}")
    url = line.split(" ", 1)[1].strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/graphql", url), url
    return proc, url


def stop_server(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


class Client:
    def __init__(self, url: str):
        rest = url[len("http://"):]
        hostport, _, _ = rest.partition("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.url = url

    def raw(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp, data
        finally:
            conn.close()

    def control(self, method: str, name: str, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        status, _resp, data = self.raw(
            method, f"/_standin/{name}", body, {"Content-Type": "application/json"}
        )
        try:
            return status, json.loads(data)
        except json.JSONDecodeError:
            return status, data.decode()

    def sign(self, body: bytes, creds=PLAIN, region=REGION, service="appsync", headers=None,
             signer_cls=SigV4Auth):
        req = AWSRequest(
            method="POST",
            url=self.url,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        signer_cls(creds, service, region).add_auth(req)
        return dict(req.headers.items())

    def graphql(self, query: str, variables=None, *, creds=PLAIN, body: bytes | None = None,
                tamper=None, extra_after_sign=None, drop=(), **sign_kw):
        if body is None:
            body = json.dumps({"query": query, "variables": variables or {}}).encode()
        headers = self.sign(body, creds=creds, **sign_kw)
        for name in drop:
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers.update(extra_after_sign or {})
        if tamper is not None:
            body = tamper(body)
        status, resp, data = self.raw("POST", "/graphql", body, headers)
        return status, json.loads(data), resp

    def create(self, pid, email="someone@example.com", owner=None, **kw):
        variables = {"input": {"id": pid, "email": email, "profileOwner": owner or f"{pid}::user-{pid}"}}
        return self.graphql(CREATE_DOC, variables, **kw)

    def delete(self, pid, **kw):
        """The worker's deleteUserProfile document (selects the id only)."""
        return self.graphql(DELETE_DOC, {"input": {"id": pid}}, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("standin") / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k != "STANDIN_CREDENTIALS"}
    proc, url = start_server(
        log_path,
        "--credential", f"{PLAIN.access_key}:{PLAIN.secret_key}",
        "--credential", f"{TEMP.access_key}:{TEMP.secret_key}:{TEMP.token}",
        "--seed", str(SEED),
        env=env,
    )
    yield Client(url), log_path, proc
    assert stop_server(proc) == 0


@pytest.fixture
def client(server):
    c = server[0]
    status, _ = c.control("POST", "reset")
    assert status == 200
    return c


def stats(client):
    return client.control("GET", "stats")[1]


def doc_location(doc: str, needle: str):
    for i, line in enumerate(doc.splitlines(), start=1):
        col = line.find(needle)
        if col >= 0:
            return {"line": i, "column": col + 1, "sourceName": None}
    raise AssertionError(needle)


# --------------------------------------------------------------------------- happy path


def test_health(client):
    status, body = client.control("GET", "health")
    assert (status, body) == (200, "ok")


def test_valid_signed_create_is_stored(client):
    status, body, resp = client.create("id-1", owner="id-1::alice")
    assert status == 200, body
    assert "errors" not in body
    item = body["data"]["createUserProfile"]
    assert item["id"] == "id-1"
    assert item["email"] == "someone@example.com"
    # Amplify's owner-field resolver answers the part after "::"; the item keeps it whole.
    assert item["profileOwner"] == "alice"
    assert item["__typename"] == "UserProfile"
    assert DATETIME_RE.match(item["createdAt"]) and item["createdAt"] == item["updatedAt"]
    assert resp.getheader("Content-Type").startswith("application/json")

    _, profiles = client.control("GET", "profiles")
    assert [p["id"] for p in profiles["items"]] == ["id-1"]
    assert profiles["items"][0]["email"] == "someone@example.com"
    assert profiles["items"][0]["profileOwner"] == "id-1::alice"
    s = stats(client)
    assert s["requests"] == 1 and s["authenticated"] == 1
    assert s["createAttempts"] == 1 and s["created"] == 1 and s["duplicates"] == 0
    entry = s["perId"]["id-1"]
    created_at = entry.pop("createdAtMicros")
    assert entry == {"attempts": 1, "created": 1, "duplicates": 0, "faulted": 0,
                     "deleteAttempts": 0, "deleted": 0, "deleteMissing": 0}
    assert abs(created_at / 1e6 - time.time()) < 60
    assert s["sessionTokenRequests"] == 0


def test_create_without_id_generates_uuid(client):
    body = json.dumps({"query": CREATE_DOC, "variables": {"input": {"email": "x@example.com"}}}).encode()
    status, out, _ = client.graphql("", body=body)
    assert status == 200
    uuid.UUID(out["data"]["createUserProfile"]["id"])


def test_owner_reads_as_amplify_resolver_returns_it(client):
    for pid, stored, read in [
        ("o1", "o1::bob", "bob"),
        ("o2", "plain", "plain"),
        ("o3", "a::b::c", "c"),
        ("o4", "o4::", "o4"),  # Java's split drops the trailing empty part
    ]:
        assert client.create(pid, owner=stored)[0] == 200
        _, body, _ = client.graphql(GET_DOC, {"id": pid})
        assert body["data"]["getUserProfile"]["profileOwner"] == read, pid
    # A field left out of the input is not stored (Amplify puts the input as given).
    _, body, _ = client.graphql(
        "mutation($input: CreateUserProfileInput!) { createUserProfile(input: $input) { id profileOwner } }",
        {"input": {"id": "o5"}},
    )
    assert body["data"]["createUserProfile"] == {"id": "o5", "profileOwner": None}
    _, profiles = client.control("GET", "profiles")
    stored = next(p for p in profiles["items"] if p["id"] == "o5")
    assert sorted(stored) == ["__typename", "createdAt", "id", "updatedAt"]


def test_create_condition_is_judged_on_the_new_item(client):
    doc = (
        "mutation($input: CreateUserProfileInput!, $c: ModelUserProfileConditionInput) {"
        " createUserProfile(input: $input, condition: $c) { id } }"
    )
    refused = {"input": {"id": "c1", "email": "x@example.com"}, "c": {"email": {"attributeExists": True}}}
    _, body, _ = client.graphql(doc, refused)
    assert body["data"] == {"createUserProfile": None}
    assert body["errors"][0]["errorType"] == "DynamoDB:ConditionalCheckFailedException"
    accepted = {"input": {"id": "c2"}, "c": {"email": {"attributeExists": False}}}
    _, body, _ = client.graphql(doc, accepted)
    assert body["data"] == {"createUserProfile": {"id": "c2"}}
    _, profiles = client.control("GET", "profiles")
    assert [p["id"] for p in profiles["items"] if p["id"].startswith("c")] == ["c2"]


def test_duplicate_id_has_appsync_conditional_check_shape(client):
    assert client.create("dup")[0] == 200
    status, body, _ = client.create("dup")
    assert status == 200
    err = body["errors"][0]
    message = err.pop("message")
    assert re.fullmatch(
        r"The conditional request failed \(Service: DynamoDb, Status Code: 400, "
        r"Request ID: [A-Z0-9]{52}\)",
        message,
    ), message
    assert body == {
        "data": {"createUserProfile": None},
        "errors": [
            {
                "path": ["createUserProfile"],
                "data": None,
                "errorType": "DynamoDB:ConditionalCheckFailedException",
                "errorInfo": None,
                "locations": [doc_location(CREATE_DOC, "createUserProfile(")],
            }
        ],
    }
    assert list(err) == ["path", "data", "errorType", "errorInfo", "locations"]
    s = stats(client)
    assert (s["createAttempts"], s["created"], s["duplicates"]) == (2, 1, 1)
    first_stored = s["perId"]["dup"].pop("createdAtMicros")
    assert s["perId"]["dup"] == {"attempts": 2, "created": 1, "duplicates": 1, "faulted": 0,
                                 "deleteAttempts": 0, "deleted": 0, "deleteMissing": 0}
    # A duplicate does not move the creation time.
    assert isinstance(first_stored, int)


def test_concurrent_creates_of_one_id_store_it_once(client):
    results = []

    def worker():
        results.append(client.create("race")[1])

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if "errors" not in r]
    dup = [r for r in results if r.get("errors")]
    assert len(ok) == 1 and len(dup) == 15
    assert all(r["errors"][0]["errorType"] == "DynamoDB:ConditionalCheckFailedException" for r in dup)
    s = stats(client)
    assert s["perId"]["race"]["created"] == 1 and s["perId"]["race"]["attempts"] == 16


def test_creation_time_per_id_and_stats_for_chosen_ids(client):
    before = time.time()
    for pid in ("a", "b", "c"):
        assert client.create(pid)[0] == 200
    after = time.time()
    status, out = client.control("POST", "stats", {"ids": ["a", "c", "never-seen"]})
    assert status == 200
    assert sorted(out["perId"]) == ["a", "c"]
    assert out["created"] == 3 and out["profiles"] == 3
    a, c = out["perId"]["a"]["createdAtMicros"], out["perId"]["c"]["createdAtMicros"]
    assert before * 1e6 - 1000 <= a <= c <= after * 1e6 + 1000
    # The profile's own createdAt (milliseconds) is the same moment.
    item = next(p for p in client.control("GET", "profiles")[1]["items"] if p["id"] == "a")
    assert item["createdAt"].startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(a // 1_000_000))
    )
    assert client.control("POST", "stats", {"ids": []})[1]["perId"] == {}
    for bad in ({}, {"ids": "a"}, {"ids": [1]}):
        status, out = client.control("POST", "stats", bad)
        assert status == 400 and "ids" in out["error"]


def test_get_and_list_user_profiles(client):
    for i in range(5):
        assert client.create(f"p{i}", owner=f"p{i}::{'even' if i % 2 == 0 else 'odd'}")[0] == 200
    status, body, _ = client.graphql(GET_DOC, {"id": "p3"})
    assert status == 200
    got = body["data"]["getUserProfile"]
    assert got["id"] == "p3" and got["__typename"] == "UserProfile"
    status, body, _ = client.graphql(GET_DOC, {"id": "missing"})
    assert body == {"data": {"getUserProfile": None}}

    seen, token, pages = [], None, 0
    while True:
        _, body, _ = client.graphql(LIST_DOC, {"limit": 2, "nextToken": token})
        page = body["data"]["listUserProfiles"]
        seen += [i["id"] for i in page["items"]]
        token = page["nextToken"]
        pages += 1
        if token is None:
            break
    assert seen == [f"p{i}" for i in range(5)] and pages == 3

    _, body, _ = client.graphql(LIST_DOC, {"filter": {"profileOwner": {"eq": "p1::odd"}}})
    assert [i["id"] for i in body["data"]["listUserProfiles"]["items"]] == ["p1"]
    _, body, _ = client.graphql(LIST_DOC, {"filter": {"id": {"eq": "p4"}}})
    assert [i["id"] for i in body["data"]["listUserProfiles"]["items"]] == ["p4"]


def test_typename_and_keepalive_connection(client):
    conn = http.client.HTTPConnection(client.host, client.port, timeout=10)
    try:
        for _ in range(3):
            body = json.dumps({"query": "{ __typename }"}).encode()
            conn.request("POST", "/graphql", body=body, headers=client.sign(body))
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read()) == {"data": {"__typename": "Query"}}
    finally:
        conn.close()


# --------------------------------------------------------------------------- deleteUserProfile

# A selection of every field, to see the item the delete answers with.
DELETE_ALL_DOC = (
    "mutation D($input: DeleteUserProfileInput!, $condition: ModelUserProfileConditionInput) {"
    " deleteUserProfile(input: $input, condition: $condition) {"
    " id email profileOwner createdAt updatedAt __typename } }"
)
NO_DELETES = {"deleteAttempts": 0, "deleted": 0, "deleteMissing": 0}


def test_delete_removes_the_item_and_answers_it(client):
    _, created, _ = client.create("del-1", email="gone@example.com", owner="del-1::alice")
    item = created["data"]["createUserProfile"]
    status, body, _ = client.graphql(DELETE_ALL_DOC, {"input": {"id": "del-1"}})
    assert status == 200
    # The deleted item as DeleteItem returned it (ALL_OLD), the owner read as Amplify reads it.
    assert body == {"data": {"deleteUserProfile": item}}
    assert item["profileOwner"] == "alice" and item["email"] == "gone@example.com"
    assert client.control("GET", "profiles")[1] == {"items": []}
    # A hard delete: both reads answer null, with no error.
    assert client.graphql(GET_DOC, {"id": "del-1"})[1] == {"data": {"getUserProfile": None}}
    assert client.graphql(WORKER_GET_DOC, {"id": "del-1"})[1] == {"data": {"getUserProfile": None}}
    s = stats(client)
    assert (s["deleteAttempts"], s["deleted"], s["deleteMissing"]) == (1, 1, 0)
    assert s["operations"]["deleteUserProfile"] == 1
    entry = s["perId"]["del-1"]
    created_at, deleted_at = entry.pop("createdAtMicros"), entry.pop("deletedAtMicros")
    assert created_at <= deleted_at and abs(deleted_at / 1e6 - time.time()) < 60
    assert entry == {"attempts": 1, "created": 1, "duplicates": 0, "faulted": 0,
                     "deleteAttempts": 1, "deleted": 1, "deleteMissing": 0}


def test_worker_delete_document_answers_the_id_only(client):
    assert client.create("del-2")[0] == 200
    status, body, _ = client.delete("del-2")
    assert (status, body) == (200, {"data": {"deleteUserProfile": {"id": "del-2"}}})
    assert stats(client)["profiles"] == 0


def test_delete_of_a_missing_id_answers_null_without_error(client):
    # AppSync: DeleteItem's attribute_exists(id) fails, the data source reads the item, finds
    # none (the desired result) and treats the delete as successful.
    status, body, _ = client.delete("never-stored")
    assert (status, body) == (200, {"data": {"deleteUserProfile": None}})
    assert client.create("twice")[0] == 200
    assert client.delete("twice")[1] == {"data": {"deleteUserProfile": {"id": "twice"}}}
    assert client.delete("twice")[1] == {"data": {"deleteUserProfile": None}}
    s = stats(client)
    assert (s["deleteAttempts"], s["deleted"], s["deleteMissing"]) == (3, 1, 2)
    assert s["perId"]["never-stored"] == {"attempts": 0, "created": 0, "duplicates": 0, "faulted": 0,
                                          "deleteAttempts": 1, "deleted": 0, "deleteMissing": 1}
    twice = s["perId"]["twice"]
    assert (twice["deleteAttempts"], twice["deleted"], twice["deleteMissing"]) == (2, 1, 1)


def test_delete_condition_is_judged_on_the_stored_item(client):
    assert client.create("dc-1", email="kept@example.com")[0] == 200
    refused = {"input": {"id": "dc-1"}, "condition": {"email": {"eq": "other@example.com"}}}
    status, body, _ = client.graphql(DELETE_ALL_DOC, refused)
    assert status == 200
    err = body["errors"][0]
    message = err.pop("message")
    assert re.fullmatch(
        r"The conditional request failed \(Service: DynamoDb, Status Code: 400, "
        r"Request ID: [A-Z0-9]{52}\)",
        message,
    ), message
    assert body == {
        "data": {"deleteUserProfile": None},
        "errors": [{
            "path": ["deleteUserProfile"],
            "data": None,
            "errorType": "DynamoDB:ConditionalCheckFailedException",
            "errorInfo": None,
            "locations": [doc_location(DELETE_ALL_DOC, "deleteUserProfile(")],
        }],
    }
    assert [p["id"] for p in client.control("GET", "profiles")[1]["items"]] == ["dc-1"]
    missing_attr = {"input": {"id": "dc-1"}, "condition": {"email": {"attributeExists": False}}}
    assert client.graphql(DELETE_ALL_DOC, missing_attr)[1]["errors"][0]["errorType"] == (
        "DynamoDB:ConditionalCheckFailedException"
    )
    accepted = {"input": {"id": "dc-1"}, "condition": {"email": {"eq": "kept@example.com"}}}
    assert client.graphql(DELETE_ALL_DOC, accepted)[1]["data"]["deleteUserProfile"]["id"] == "dc-1"
    # No item: the same successful null as without a condition.
    assert client.graphql(DELETE_ALL_DOC, accepted)[1] == {"data": {"deleteUserProfile": None}}
    s = stats(client)
    assert (s["deleteAttempts"], s["deleted"], s["deleteMissing"]) == (4, 1, 1)


def test_a_deleted_id_can_be_created_again(client):
    assert client.create("again")[0] == 200
    assert client.delete("again")[0] == 200
    status, body, _ = client.create("again", email="back@example.com")
    assert status == 200 and "errors" not in body
    assert client.graphql(GET_DOC, {"id": "again"})[1]["data"]["getUserProfile"]["email"] == "back@example.com"
    entry = stats(client)["perId"]["again"]
    assert (entry["created"], entry["deleted"], entry["duplicates"]) == (2, 1, 0)


def test_delete_input_is_validated_and_an_empty_id_refused(client):
    status, body, _ = client.graphql(DELETE_DOC, {"input": {"id": "x", "email": "e@example.com"}})
    assert status == 200 and body["data"] is None and "errorType" not in body["errors"][0]
    assert body["errors"][0]["message"].startswith("Variable 'input' has an invalid value")
    status, body, _ = client.graphql(DELETE_DOC, {"input": {}})
    assert status == 200 and body["data"] is None
    status, body, _ = client.delete("")
    assert status == 200 and body["data"] == {"deleteUserProfile": None}
    assert body["errors"][0]["errorType"] == "DynamoDB:DynamoDbException"
    assert "empty string value" in body["errors"][0]["message"]
    assert stats(client)["deleted"] == 0


def test_delete_needs_a_valid_signature(client):
    assert client.create("signed")[0] == 200
    body = json.dumps({"query": DELETE_DOC, "variables": {"input": {"id": "signed"}}}).encode()
    status, out, _ = client.graphql("", body=body, tamper=lambda b: b.replace(b"signed", b"signex"))
    assert status == 403 and out["errors"][0]["errorType"] == "InvalidSignatureException"
    status, _, _ = client.raw("POST", "/graphql", body, {"Content-Type": "application/json"})
    assert status == 401
    assert client.delete("signed", creds=Credentials(PLAIN.access_key, "wrong"))[0] == 403
    assert [p["id"] for p in client.control("GET", "profiles")[1]["items"]] == ["signed"]
    assert client.delete("signed", creds=TEMP)[1] == {"data": {"deleteUserProfile": {"id": "signed"}}}
    s = stats(client)
    assert s["deleted"] == 1 and s["deleteAttempts"] == 1


def test_faults_apply_to_delete_as_to_create(client):
    for pid in ("f-1", "f-2", "f-3"):
        assert client.create(pid)[0] == 200
    client.control("POST", "faults", {"rules": [
        {"status": 503, "count": 1, "match": {"id": "f-1"}},
        {"errorType": "DynamoDB:ThrottlingException", "count": 1, "match": {"idPrefix": "f-2"}},
        {"disconnect": True, "count": 1, "match": {"idIn": ["f-3"]}},
    ]})
    status, body, _ = client.delete("f-1")
    assert status == 503 and body["errors"][0]["errorType"] == "ServiceUnavailableException"
    status, body, _ = client.delete("f-2")
    assert status == 200 and body["data"] == {"deleteUserProfile": None}
    assert body["errors"][0]["errorType"] == "DynamoDB:ThrottlingException"
    assert body["errors"][0]["path"] == ["deleteUserProfile"]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.delete("f-3")
    # A faulted delete deletes nothing; the next one (rules spent) does.
    assert len(client.control("GET", "profiles")[1]["items"]) == 3
    for pid in ("f-1", "f-2", "f-3"):
        assert client.delete(pid)[1] == {"data": {"deleteUserProfile": {"id": pid}}}
    s = stats(client)
    assert s["faultsInjected"] == {
        "status:503": 1, "errorType:DynamoDB:ThrottlingException": 1, "disconnect": 1,
    }
    for pid in ("f-1", "f-2", "f-3"):
        entry = s["perId"][pid]
        assert (entry["deleteAttempts"], entry["faulted"], entry["deleted"]) == (2, 1, 1), pid


def test_simulator_answer_for_a_missing_id_by_fault_rule(client):
    """Amplify's AppSync simulator answers a delete of a missing id with the resolver's
    ConditionalCheckFailed error (test_amplify_sim.py); this rule gives the same shape, to
    test a client against that answer too."""
    client.control("POST", "faults", {"rules": [
        {"errorType": "DynamoDB:ConditionalCheckFailedException", "match": {"field": "deleteUserProfile"}},
    ]})
    status, body, _ = client.delete("absent")
    assert status == 200
    [err] = body["errors"]
    assert body["data"] == {"deleteUserProfile": None}
    assert (err["errorType"], err["data"], err["errorInfo"], err["path"]) == (
        "DynamoDB:ConditionalCheckFailedException", None, None, ["deleteUserProfile"],
    )
    assert err["message"].startswith("The conditional request failed (Service: DynamoDb")
    # The rule matches by field: creates are untouched.
    assert client.create("present")[0] == 200 and "errors" not in client.create("other")[1]


# --------------------------------------------------------------------------- SigV4


def test_session_token_credentials(client):
    status, body, _ = client.create("tok-1", creds=TEMP)
    assert status == 200, body
    assert stats(client)["sessionTokenRequests"] == 1

    # Signed with the same key but without the token header.
    no_token = Credentials(TEMP.access_key, TEMP.secret_key)
    status, body, _ = client.create("tok-2", creds=no_token)
    assert status == 403
    assert body == {"errors": [{"errorType": "UnrecognizedClientException",
                                "message": "The security token included in the request is invalid."}]}

    # Token present but not among SignedHeaders.
    status, body, _ = client.create(
        "tok-3", creds=no_token, extra_after_sign={"X-Amz-Security-Token": TEMP.token}
    )
    assert status == 403 and body["errors"][0]["errorType"] == "UnrecognizedClientException"

    # Wrong token value (signed).
    status, body, _ = client.create("tok-4", creds=Credentials(TEMP.access_key, TEMP.secret_key, "other"))
    assert status == 403 and body["errors"][0]["errorType"] == "UnrecognizedClientException"

    # A token sent for a credential that has none.
    status, body, _ = client.create("tok-5", creds=Credentials(PLAIN.access_key, PLAIN.secret_key, "x"))
    assert status == 403 and body["errors"][0]["errorType"] == "UnrecognizedClientException"

    _, profiles = client.control("GET", "profiles")
    assert [p["id"] for p in profiles["items"]] == ["tok-1"]
    assert stats(client)["authFailures"] == {"UnrecognizedClientException": 4}


def test_unsigned_request_is_401(client):
    body = json.dumps({"query": CREATE_DOC, "variables": {"input": {"id": "u"}}}).encode()
    status, resp, data = client.raw("POST", "/graphql", body, {"Content-Type": "application/json"})
    assert status == 401
    assert json.loads(data) == {"errors": [{"errorType": "UnauthorizedException",
                                            "message": "Valid authorization header not provided."}]}
    assert resp.getheader("x-amzn-ErrorType") == "UnauthorizedException"
    status, _, data = client.raw("POST", "/graphql", body, {"Authorization": "Bearer abc"})
    assert status == 401


def test_malformed_authorization_header_is_403(client):
    body = b'{"query":"{ __typename }"}'
    headers = client.sign(body)
    headers["Authorization"] = "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abc"
    status, _, data = client.raw("POST", "/graphql", body, headers)
    assert status == 403
    err = json.loads(data)["errors"][0]
    assert err["errorType"] == "IncompleteSignatureException"
    assert "Authorization header requires 'Credential' parameter." in err["message"]


def test_unknown_access_key_is_unrecognized_client(client):
    status, body, _ = client.create("k", creds=Credentials("AKIDUNKNOWN", "whatever"))
    assert status == 403
    assert body == {"errors": [{"errorType": "UnrecognizedClientException",
                                "message": "The security token included in the request is invalid."}]}


def test_tampered_body_is_invalid_signature(client):
    status, body, _ = client.create("tamper", tamper=lambda b: b.replace(b"tamper", b"tamper2"))
    assert status == 403
    assert body == {"errors": [{"errorType": "InvalidSignatureException", "message": SIG_MISMATCH}]}
    assert client.control("GET", "profiles")[1]["items"] == []
    last = stats(client)["lastAuthFailure"]
    assert last["errorType"] == "InvalidSignatureException" and "canonicalRequest" in last


def test_wrong_secret_is_invalid_signature(client):
    status, body, _ = client.create("ws", creds=Credentials(PLAIN.access_key, "not-the-secret"))
    assert status == 403
    assert body["errors"][0] == {"errorType": "InvalidSignatureException", "message": SIG_MISMATCH}


def test_signed_header_changed_after_signing_is_rejected(client):
    status, body, _ = client.create("hdr", extra_after_sign={"Content-Type": "text/plain"})
    assert status == 403 and body["errors"][0]["errorType"] == "InvalidSignatureException"


def test_unsigned_extra_headers_are_ignored(client):
    status, body, _ = client.create("extra", extra_after_sign={"User-Agent": "x/1", "X-Other": "y"})
    assert status == 200, body


class _SignEverything(SigV4Auth):
    """Signs every header, including those botocore leaves out (user-agent...)."""

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name, value in request.headers.items():
            out[name.lower()] = value
        if "host" not in out:
            out["host"] = botocore.auth._host_from_url(request.url)
        return out


def test_headers_botocore_would_not_sign_are_verified_when_signed(client):
    status, body, _ = client.create(
        "ua", headers={"User-Agent": "rust-client/1.0"}, signer_cls=_SignEverything
    )
    assert status == 200, body
    status, body, _ = client.create(
        "ua2", headers={"User-Agent": "rust-client/1.0"}, signer_cls=_SignEverything,
        extra_after_sign={"User-Agent": "rust-client/2.0"},
    )
    assert status == 403 and body["errors"][0]["errorType"] == "InvalidSignatureException"


def test_content_sha256_header(client):
    body = json.dumps({"query": CREATE_DOC, "variables": {"input": {"id": "sha"}}}).encode()
    import hashlib

    good = hashlib.sha256(body).hexdigest()
    status, out, _ = client.graphql("", body=body, headers={"X-Amz-Content-SHA256": good})
    assert status == 200, out
    status, out, _ = client.graphql("", body=body, headers={"X-Amz-Content-SHA256": "0" * 64})
    assert status == 403 and out["errors"][0]["errorType"] == "InvalidSignatureException"


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"service": "execute-api"}, "'appsync'"),
        ({"region": "eu-west-1"}, "us-east-1/appsync/aws4_request"),
    ],
)
def test_wrong_scope_is_invalid_signature(client, kw, needle):
    status, body, _ = client.create("scope", **kw)
    assert status == 403
    err = body["errors"][0]
    assert err["errorType"] == "InvalidSignatureException"
    assert needle in err["message"]


def _shift_clock(monkeypatch, delta):
    real = botocore.auth.get_current_datetime

    def shifted(remove_tzinfo=True):
        return real(remove_tzinfo) + delta

    monkeypatch.setattr(botocore.auth, "get_current_datetime", shifted)


def test_stale_date_is_signature_expired(client, monkeypatch):
    _shift_clock(monkeypatch, -dt.timedelta(minutes=6))
    status, body, _ = client.create("stale")
    assert status == 403
    err = body["errors"][0]
    assert err["errorType"] == "InvalidSignatureException"
    assert re.fullmatch(
        r"Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)",
        err["message"],
    ), err["message"]


def test_future_date_is_not_yet_current(client, monkeypatch):
    _shift_clock(monkeypatch, dt.timedelta(minutes=6))
    status, body, _ = client.create("future")
    assert status == 403
    assert body["errors"][0]["message"].startswith("Signature not yet current: ")


def test_small_skew_is_accepted(client, monkeypatch):
    _shift_clock(monkeypatch, -dt.timedelta(minutes=4))
    assert client.create("skew")[0] == 200


def test_runtime_credentials(client):
    extra = Credentials("ASIARUNTIME", "rt-secret", "rt-token")
    assert client.create("rt", creds=extra)[0] == 403
    status, listed = client.control("POST", "credentials", {"credentials": [
        {"accessKeyId": extra.access_key, "secretAccessKey": extra.secret_key,
         "sessionToken": extra.token}]})
    assert status == 200
    assert {"accessKeyId": "ASIARUNTIME", "hasSessionToken": True} in listed["credentials"]
    assert "rt-secret" not in json.dumps(listed)
    assert client.create("rt", creds=extra)[0] == 200


# AWS's published SigV4 test suite (aws-sig-v4-test-suite, 2015-08-30): signatures
# nobody in this repository computed, checked against the stand-in's verifier.
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeo"
    "IYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5V"
    "SXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yj"
    "c8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
SUITE_VECTORS = [
    ("post-vanilla", [], b"", None, "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("post-x-www-form-urlencoded", [("Content-Type", "application/x-www-form-urlencoded")],
     b"Param1=value1", None, "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ("post-sts-header-before", [("X-Amz-Security-Token", SUITE_TOKEN)], b"", SUITE_TOKEN,
     "host;x-amz-date;x-amz-security-token",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
]


def _standin_module():
    sys.path.insert(0, str(SERVER.parent))
    try:
        from standin import sigv4
    finally:
        sys.path.pop(0)
    return sigv4


def _suite_headers(extra, signed, signature):
    import io

    lines = ["Host: example.amazonaws.com", "X-Amz-Date: 20150830T123600Z"]
    lines += [f"{k}: {v}" for k, v in extra]
    lines.append(
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return http.client.parse_headers(io.BytesIO(("\r\n".join(lines) + "\r\n\r\n").encode()))


@pytest.mark.parametrize("name, extra, body, token, signed, signature", SUITE_VECTORS,
                         ids=[v[0] for v in SUITE_VECTORS])
def test_verifier_accepts_aws_test_suite_vectors(name, extra, body, token, signed, signature):
    mod = _standin_module()
    at = lambda: dt.datetime(2015, 8, 30, 12, 38, 0, tzinfo=dt.timezone.utc)  # noqa: E731
    verifier = mod.Verifier("us-east-1", {"AKIDEXAMPLE": (SUITE_SECRET, token)}, service="service", clock=at)
    ident = verifier.verify("POST", "/", _suite_headers(extra, signed, signature), body)
    assert ident == {"accessKeyId": "AKIDEXAMPLE", "sessionToken": token}

    wrong = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(mod.AuthError) as e:
        verifier.verify("POST", "/", _suite_headers(extra, signed, wrong), body)
    assert (e.value.status, e.value.error_type) == (403, "InvalidSignatureException")
    with pytest.raises(mod.AuthError) as e:
        verifier.verify("POST", "/", _suite_headers(extra, signed, signature), body + b"x")
    assert e.value.error_type == "InvalidSignatureException"


# --------------------------------------------------------------------------- GraphQL errors


def test_validation_error_unknown_field(client):
    query = "mutation { createUserProfile(input: {id: \"v\"}) { id bogus } }"
    status, body, _ = client.graphql(query)
    assert status == 200
    assert body["data"] is None
    err = body["errors"][0]
    assert "errorType" not in err
    assert err["path"] is None
    assert err["locations"] == [{"line": 1, "column": query.index("bogus") + 1, "sourceName": None}]
    assert err["message"] == (
        "Validation error of type FieldUndefined: Field 'bogus' in type 'UserProfile' "
        "is undefined @ 'createUserProfile/bogus'"
    )
    assert client.control("GET", "profiles")[1]["items"] == []


def test_wrong_variable_type_and_syntax_errors_have_no_error_type(client):
    status, body, _ = client.graphql(
        "mutation M($input: String!) { createUserProfile(input: $input) { id } }", {"input": "x"}
    )
    assert status == 200 and body["data"] is None
    assert body["errors"][0]["message"].startswith("Validation error of type VariableTypeMismatch:")
    assert all("errorType" not in e for e in body["errors"])

    status, body, _ = client.graphql(CREATE_DOC, {"input": {"id": 5, "nope": 1}})
    assert status == 200 and body["data"] is None
    assert body["errors"] and all("errorType" not in e for e in body["errors"])
    assert body["errors"][0]["message"].startswith("Variable 'input' has an invalid value")

    status, body, _ = client.graphql("mutation { createUserProfile(input: {id: \"x\"}) { id }")
    assert status == 200 and body["data"] is None
    assert body["errors"][0]["message"].startswith("Invalid Syntax")
    assert "errorType" not in body["errors"][0]


def test_non_json_body_is_400(client):
    status, body, _ = client.graphql("", body=b"this is not json")
    assert status == 400
    assert body["errors"][0]["errorType"] == "MalformedHttpRequestException"


# --------------------------------------------------------------------------- faults


def test_count_limited_503_then_success(client):
    status, out = client.control("POST", "faults", {"rules": [{"status": 503, "count": 2}]})
    assert status == 200 and out["rules"][0]["remaining"] == 2
    for _ in range(2):
        status, body, resp = client.create("flaky")
        assert status == 503
        assert body == {"errors": [{"errorType": "ServiceUnavailableException",
                                    "message": body["errors"][0]["message"]}]}
        assert client.control("GET", "profiles")[1]["items"] == []
    status, body, _ = client.create("flaky")
    assert status == 200 and "errors" not in body
    _, rules = client.control("GET", "faults")
    assert rules["rules"][0]["remaining"] == 0 and rules["rules"][0]["applied"] == 2
    s = stats(client)
    assert s["faultsInjected"] == {"status:503": 2}
    assert isinstance(s["perId"]["flaky"].pop("createdAtMicros"), int)
    assert s["perId"]["flaky"] == {"attempts": 3, "created": 1, "duplicates": 0, "faulted": 2,
                                   "deleteAttempts": 0, "deleted": 0, "deleteMissing": 0}


def test_429_and_500_bodies_and_headers(client):
    client.control("POST", "faults", {"rules": [
        {"status": 429, "count": 1, "headers": {"Retry-After": "1"}},
        {"status": 500, "count": 1},
    ]})
    status, body, resp = client.create("t1")
    assert status == 429 and body["errors"][0]["errorType"] == "TooManyRequestsException"
    assert resp.getheader("Retry-After") == "1"
    status, body, _ = client.create("t1")
    assert status == 500 and body["errors"][0]["errorType"] == "InternalFailureException"
    assert client.create("t1")[0] == 200


def test_faults_apply_only_after_authentication(client):
    client.control("POST", "faults", {"rules": [{"status": 503}]})
    status, body, _ = client.create("x", creds=Credentials(PLAIN.access_key, "bad"))
    assert status == 403
    assert stats(client)["faultsInjected"] == {}


def _fraction_pattern(client, n):
    pattern = []
    for i in range(n):
        status, body, _ = client.create(f"frac-{i}-{uuid.uuid4()}")
        pattern.append(bool(body.get("errors")))
    return pattern


def test_fraction_is_reproducible_with_seed(client):
    rules = {"rules": [{"errorType": "DynamoDB:ProvisionedThroughputExceededException", "fraction": 0.5}]}
    client.control("POST", "faults", rules)
    first = _fraction_pattern(client, 16)
    client.control("POST", "faults", rules)
    second = _fraction_pattern(client, 16)
    rng = random.Random(SEED)
    expected = [rng.random() < 0.5 for _ in range(16)]
    assert first == second == expected
    assert 0 < sum(first) < 16

    client.control("POST", "faults", {**rules, "seed": 99})
    rng = random.Random(99)
    assert _fraction_pattern(client, 16) == [rng.random() < 0.5 for _ in range(16)]


def test_error_type_fault_shape(client):
    client.control("POST", "faults", {"rules": [{"errorType": "Unauthorized", "count": 1}]})
    status, body, _ = client.create("auth-fault")
    assert status == 200
    assert body == {
        "data": {"createUserProfile": None},
        "errors": [
            {
                "path": ["createUserProfile"],
                "data": None,
                "errorType": "Unauthorized",
                "errorInfo": None,
                "locations": [doc_location(CREATE_DOC, "createUserProfile(")],
                "message": "Not Authorized to access createUserProfile on type Mutation",
            }
        ],
    }
    assert client.control("GET", "profiles")[1]["items"] == []
    assert stats(client)["faultsInjected"] == {"errorType:Unauthorized": 1}
    assert client.create("auth-fault")[0] == 200


def test_match_by_id(client):
    client.control("POST", "faults", {"rules": [
        {"status": 500, "match": {"id": "bad-1"}},
        {"errorType": "ExecutionTimeout", "match": {"idPrefix": "slow-"}},
        {"status": 429, "match": {"idIn": ["a", "b"]}},
    ]})
    assert client.create("good")[0] == 200
    assert client.create("bad-1")[0] == 500
    status, body, _ = client.create("slow-7")
    assert status == 200 and body["errors"][0]["errorType"] == "ExecutionTimeout"
    assert client.create("b")[0] == 429
    # getUserProfile carries no create or delete id, so id-matched rules do not apply.
    assert client.graphql(GET_DOC, {"id": "bad-1"})[0] == 200
    _, profiles = client.control("GET", "profiles")
    assert [p["id"] for p in profiles["items"]] == ["good"]


def test_latency_fault_and_global_latency(client):
    client.control("POST", "faults", {"rules": [{"latencyMs": 400, "count": 1}]})
    t0 = time.monotonic()
    status, _, _ = client.create("lat")
    assert status == 200 and time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    assert client.create("lat2")[0] == 200
    assert time.monotonic() - t0 < 0.4
    assert stats(client)["faultsInjected"] == {"latency": 1}

    client.control("DELETE", "faults")
    assert client.control("POST", "latency", {"ms": 250})[1] == {"ms": 250}
    t0 = time.monotonic()
    assert client.graphql(GET_DOC, {"id": "lat"})[0] == 200
    assert time.monotonic() - t0 >= 0.25
    client.control("POST", "latency", {"ms": 0})


def test_disconnect_fault(client):
    client.control("POST", "faults", {"rules": [{"disconnect": True, "count": 1}]})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.create("dc")
    assert client.control("GET", "profiles")[1]["items"] == []
    assert client.create("dc")[0] == 200
    assert stats(client)["faultsInjected"] == {"disconnect": 1}


def test_invalid_rules_are_rejected(client):
    for bad in (
        {"rules": [{"fraction": 0.5}]},
        {"rules": [{"status": 503, "fraction": 2}]},
        {"rules": [{"status": 503, "bogus": 1}]},
        {"rules": [{"status": 503, "match": {"idz": "x"}}]},
        {"rules": "nope"},
    ):
        status, out = client.control("POST", "faults", bad)
        assert status == 400, bad
        assert "error" in out


def test_reset_clears_everything(client):
    client.create("r1")
    client.control("POST", "faults", {"rules": [{"status": 503}]})
    client.control("POST", "latency", {"ms": 5})
    assert client.control("POST", "reset")[0] == 200
    assert client.control("GET", "profiles")[1] == {"items": []}
    assert client.control("GET", "faults")[1]["rules"] == []
    s = stats(client)
    assert s["requests"] == 0 and s["created"] == 0 and s["perId"] == {} and s["latencyMs"] == 0
    assert client.create("r1")[0] == 200


# --------------------------------------------------------------------------- process hygiene


def test_env_credentials_sigterm_and_logs_without_emails(tmp_path):
    log_path = tmp_path / "stderr.log"
    env = dict(os.environ, STANDIN_CREDENTIALS=f"AKIDENV:envsecret,ASIAENV:envsecret2:envtoken")
    proc, url = start_server(log_path, "--seed", "1", env=env)
    try:
        c = Client(url)
        assert c.create("e1", email="private.person@example.org",
                        creds=Credentials("AKIDENV", "envsecret"))[0] == 200
        assert c.create("e2", email="private.person@example.org",
                        creds=Credentials("ASIAENV", "envsecret2", "envtoken"))[0] == 200
        assert c.create("e2", email="private.person@example.org",
                        creds=Credentials("AKIDENV", "envsecret"))[0] == 200  # duplicate error
        assert c.create("e3", creds=Credentials("AKIDENV", "wrong"))[0] == 403
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop_server(proc)
    log = log_path.read_text()
    assert "/graphql" in log
    assert "@" not in log
    assert "envsecret" not in log and "envtoken" not in log
