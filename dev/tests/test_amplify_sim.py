"""dev/amplify-sim/serve.cjs: Amplify's AppSync simulator serving the transformer's resolvers for
the seeds' model on a moto server (both started here on free 127.0.0.1 ports, stopped at the end).

What the process promises the local stack: the model table created in moto with the key the
transformer declares, `MODEL_TABLE` and `READY` lines, a listener on 127.0.0.1 only, a clean exit
on SIGTERM, no e-mail address in its log, and refusals of a non-loopback endpoint. The pipeline's
behaviour against it is the lab test `dev/lab/tests/amplify_resolvers.rs`.

Needs the pinned npm package (`make amplify-sim`, which `make test` runs first): without it these
tests fail saying so.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dev" / "amplify-sim"
SERVE = PACKAGE / "serve.cjs"
REGION = "us-east-1"
KEY, SECRET = "AKIDLOCALTEST0000001", "local/test/secret/key/0000000000000000000"
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION}
CREATE = (ROOT / "schemas" / "graphql" / "createUserProfile.graphql").read_text()
DELETE = (ROOT / "schemas" / "graphql" / "deleteUserProfile.graphql").read_text()
GET = (ROOT / "schemas" / "graphql" / "getUserProfile.graphql").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node() -> str:
    installed = PACKAGE / "node_modules" / ".package-lock.json"
    assert installed.exists(), f"{installed} is missing: run `make amplify-sim` (make test does it)"
    found = shutil.which("node")
    assert found, "node is not on PATH"
    return found


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "dev" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


class Simulator:
    def __init__(self, moto: str, log_path: Path):
        self.log_path = log_path
        log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [node(), str(SERVE), "--dynamodb-endpoint", moto, "--region", REGION],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=ENV,
        )
        log.close()
        lines: queue.Queue = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line.decode())
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.stdout = []
        while True:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"not ready: {log_path.read_text()}")
            if line is None:
                raise RuntimeError(f"exited: {log_path.read_text()}")
            self.stdout.append(line.strip())
            if line.startswith("READY "):
                self.url = line.split(" ", 1)[1].strip()
                return

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=15)

    def graphql(self, query: str, variables: dict) -> dict:
        body = json.dumps({"query": query, "variables": variables})
        request = AWSRequest(method="POST", url=self.url, data=body, headers={"content-type": "application/json"})
        SigV4Auth(Credentials(KEY, SECRET), "appsync", REGION).add_auth(request)
        req = urllib.request.Request(self.url, data=body.encode(), headers=dict(request.headers), method="POST")
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def sim(moto, tmp_path_factory):
    simulator = Simulator(moto, tmp_path_factory.mktemp("sim") / "stderr.log")
    yield simulator
    simulator.stop()


def listeners(pid: int) -> list[str]:
    """The local addresses `pid` listens on (TCP, from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                address, port = fields[1].split(":")
                found.append(f"{table}:{address}:{int(port, 16)}")
    return found


def test_ready_lines_name_the_table_and_a_loopback_url(sim, moto):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/graphql", sim.url), sim.url
    assert sim.stdout == ["MODEL_TABLE UserProfile UserProfile-localapi-NONE", f"READY {sim.url}"]
    table = boto3.client(
        "dynamodb", endpoint_url=moto, region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=SECRET
    ).describe_table(TableName="UserProfile-localapi-NONE")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    port = int(sim.url.rsplit(":", 1)[1].split("/")[0])
    # 0100007F is 127.0.0.1 in /proc's byte order.
    assert listeners(sim.proc.pid) == [f"tcp:0100007F:{port}"]


def test_duplicate_create_is_amplify_shaped_and_its_log_has_no_address(sim):
    variables = {"input": {"id": "sub-dup", "email": "dup.person@example.com", "profileOwner": "sub-dup::u"}}
    created = sim.graphql(CREATE, variables)["data"]["createUserProfile"]
    assert created["id"] == "sub-dup" and created["profileOwner"] == "u"
    again = sim.graphql(CREATE, variables)
    assert again["data"] == {"createUserProfile": None}
    [error] = again["errors"]
    assert error["errorType"] == "DynamoDB:ConditionalCheckFailedException"
    assert error["path"] == ["createUserProfile"]
    log = sim.log_path.read_text()
    assert "ConditionalCheckFailedException" in log, "the simulator logged the failed request"
    assert "@example.com" not in log


def test_delete_answers_as_the_stand_in_reads_them(sim):
    """Amplify's delete resolver (the worker's documents), as the stand-in's deleteUserProfile
    was based on (dev/standin/README.md): a hard delete answering the old item; then
    getUserProfile answers null. A missing id: the simulator passes on DynamoDB's refusal of
    `attribute_exists(id)`, where AppSync documents the delete as successful (null, no error)
    and the stand-in follows AppSync; this pins the simulator's side of that difference."""
    full = (
        "mutation D($input: DeleteUserProfileInput!) { deleteUserProfile(input: $input) {"
        " id email profileOwner createdAt updatedAt __typename } }"
    )
    for sub in ("sub-del-1", "sub-del-2"):
        sim.graphql(CREATE, {"input": {"id": sub, "email": f"{sub}@example.com", "profileOwner": f"{sub}::u"}})
    assert sim.graphql(DELETE, {"input": {"id": "sub-del-1"}}) == {"data": {"deleteUserProfile": {"id": "sub-del-1"}}}
    deleted = sim.graphql(full, {"input": {"id": "sub-del-2"}})["data"]["deleteUserProfile"]
    assert deleted["email"] == "sub-del-2@example.com" and deleted["profileOwner"] == "u"
    assert deleted["__typename"] == "UserProfile" and deleted["createdAt"] == deleted["updatedAt"]
    for sub in ("sub-del-1", "sub-del-2"):
        assert sim.graphql(GET, {"id": sub}) == {"data": {"getUserProfile": None}}
    for sub in ("sub-del-1", "sub-never"):
        answer = sim.graphql(DELETE, {"input": {"id": sub}})
        assert answer["data"] == {"deleteUserProfile": None}
        [error] = answer["errors"]
        assert error["errorType"] == "DynamoDB:ConditionalCheckFailedException"
        assert (error["data"], error["errorInfo"], error["path"]) == (None, None, ["deleteUserProfile"])
        assert error["message"] == "The conditional request failed"


def test_sigterm_stops_it_cleanly(moto, tmp_path):
    simulator = Simulator(moto, tmp_path / "stderr.log")
    assert simulator.stop() == 0
    port = int(simulator.url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_a_non_loopback_endpoint_is_refused():
    result = subprocess.run(
        [node(), str(SERVE), "--dynamodb-endpoint", "http://10.0.0.1:8000"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
