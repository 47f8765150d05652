"""`asyncrpc server` with real resonate-sdk workers in separate processes."""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
from resonate.connections.sse import SseFramer

from harness.isolation import free_port
from harness.processes import Processes
from harness.waiting import http_get, http_ok, wait_until

WORKER = [sys.executable, "-m", "tests.support.sdk_worker"]


def launch_workers(procs: Processes, url: str, groups: list[str], **env: str) -> None:
    """Start a worker of each group at once, then wait until every one says it is up."""
    workers = [
        procs.start(group, [*WORKER, "worker", group], {"RESONATE_URL": url, **env})
        for group in groups
    ]
    for worker, group in zip(workers, groups, strict=True):
        worker.wait_for_output(f"worker {group} up")


def start_workers(procs: Processes, url: str, groups: list[str], **env: str) -> None:
    """:func:`launch_workers`, then wait until the server lists every one's poll stream."""
    launch_workers(procs, url, groups, **env)
    wait_until(
        lambda: len(http_get(f"{url}/streams").json()["streams"]) >= len(groups),
        10,
        "the workers' poll streams",
    )


def call(procs: Processes, url: str, id: str, func: str, target: str):
    return procs.start(f"call-{id}", [*WORKER, "call", id, func, target], {"RESONATE_URL": url})


def test_rpc_between_two_groups_returns_the_value(procs: Processes) -> None:
    _, url = procs.start_server()
    start_workers(procs, url, ["t-mid", "t-leaf"])
    caller = call(procs, url, "two-groups", "mid", "t-mid")
    caller.wait_for_output(r"result=2\b", timeout=20)


def test_chain_of_three_groups_returns_three(procs: Processes) -> None:
    _, url = procs.start_server()
    start_workers(procs, url, ["t-top", "t-mid", "t-leaf"])
    caller = call(procs, url, "chain-3", "top", "t-top")
    caller.wait_for_output(r"result=3\b", timeout=20)


def test_durable_sleep_wakes_on_time(procs: Processes) -> None:
    _, url = procs.start_server()
    start_workers(procs, url, ["t-leaf"], SLEEP_S="2")
    started = time.monotonic()
    caller = call(procs, url, "sleepy", "leaf", "t-leaf")
    caller.wait_for_output(r"result=1\b", timeout=20)
    elapsed = time.monotonic() - started
    assert elapsed >= 2.0, f"woke after {elapsed:.2f}s, before the 2 s sleep was due"


def test_flow_survives_server_kill_during_durable_sleep(procs: Processes, tmp_path: Path) -> None:
    db = str(tmp_path / "server.db")
    port = free_port()
    server, url = procs.start_server(db=db, port=port)
    marker = tmp_path / "leaf-started"
    start_workers(procs, url, ["t-top", "t-mid", "t-leaf"], SLEEP_S="4", MARKER=str(marker))
    caller = call(procs, url, "survives-server-kill", "top", "t-top")
    wait_until(marker.exists, 20, "the leaf to start its durable sleep")
    time.sleep(0.5)
    server.kill(signal.SIGKILL)
    procs.start_server(db=db, port=port)
    caller.wait_for_output(r"result=3\b", timeout=40)
    assert len(marker.read_text().splitlines()) >= 1


def test_replacement_worker_finishes_a_step_whose_worker_was_killed(
    procs: Processes, tmp_path: Path
) -> None:
    _, url = procs.start_server()
    marker = tmp_path / "leaf-started"
    start_workers(procs, url, ["t-top", "t-mid"])
    leaf_env = {"RESONATE_URL": url, "TTL_S": "2", "MARKER": str(marker)}
    doomed = procs.start(
        "leaf-1", [*WORKER, "worker", "t-leaf"], {**leaf_env, "HANG_S": "600", "PID": "leaf-1"}
    )
    doomed.wait_for_output("worker t-leaf up")
    caller = call(procs, url, "survives-worker-kill", "top", "t-top")
    wait_until(marker.exists, 20, "the leaf step to start executing")
    doomed.kill(signal.SIGKILL)
    replacement_started = time.monotonic()
    procs.start("leaf-2", [*WORKER, "worker", "t-leaf"], {**leaf_env, "PID": "leaf-2"})
    caller.wait_for_output(r"result=3\b", timeout=30)
    recovery = time.monotonic() - replacement_started
    print(f"recovery after replacement start: {recovery:.2f}s")
    runs = marker.read_text().splitlines()
    assert runs[0].startswith("leaf-1") and runs[-1].startswith("leaf-2"), runs


def test_bad_input_gets_4xx_and_the_server_keeps_serving(procs: Processes) -> None:
    _, url = procs.start_server()
    cases = [
        (b"{not json", 400),
        (b"[1, 2, 3]", 400),
        (b'{"kind": "promise.explode", "head": {}, "data": {}}', 501),
        (b'{"kind": "promise.create", "head": {}, "data": {"id": 42}}', 400),
        (b'{"kind": "promise.create", "head": {}, "data": {"id": "x", "timeoutAt": "soon"}}', 400),
        (b'{"kind": "promise.create", "head": {}, "data": "nope"}', 400),
        (b'{"kind": "promise.settle", "head": {}, "data": {"id": "x", "state": "maybe"}}', 400),
        (b'{"kind": "task.acquire", "head": {}, "data": {"id": "t"}}', 400),
        (b'{"kind": "promise.search", "head": {}, "data": {"limit": 0}}', 400),
        (b"x" * (5 * 1024 * 1024), 413),
    ]
    words = {400: "bad request", 413: "error", 501: "not implemented"}
    for body, status in cases:
        response = httpx.post(f"{url}/", content=body, timeout=10)
        assert response.status_code == status, (body[:80], response.status_code)
        envelope = response.json()
        assert envelope["head"]["status"] == status
        assert envelope["data"] == words[status]
        assert response.headers["x-asyncrpc-error"], body[:80]  # what was wrong, in words
    assert httpx.get(f"{url}/healthz").json()["promises"] == 0
    ok = httpx.post(
        f"{url}/",
        json={
            "kind": "promise.create",
            "head": {"corrId": "c1"},
            "data": {"id": "fine", "timeoutAt": 2**60},
        },
    )
    assert ok.status_code == 200
    assert ok.json()["head"] == {"corrId": "c1", "status": 200, "version": "1"}
    assert ok.json()["data"]["promise"]["state"] == "pending"


def test_token_is_enforced_on_requests_and_poll_streams(procs: Processes) -> None:
    _, url = procs.start_server(extra=("--token", "s3cret"))
    envelope = {"kind": "promise.get", "head": {}, "data": {"id": "p"}}
    assert httpx.post(f"{url}/", json=envelope).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{url}/", json=envelope, headers=wrong).status_code == 401
    assert httpx.get(f"{url}/poll/g/p", headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret"}
    assert httpx.post(f"{url}/", json=envelope, headers=right).status_code == 404
    assert http_ok(f"{url}/healthz")
    assert "database" not in httpx.get(f"{url}/healthz").json()
    assert httpx.get(f"{url}/healthz", headers=wrong).json().keys() == {
        "status",
        "protocol",
        "promises",
        "tasks",
        "streams",
    }
    assert httpx.get(f"{url}/healthz", headers=right).json()["database"] == ":memory:"


def test_workers_with_the_token_complete_a_flow(procs: Processes) -> None:
    _, url = procs.start_server(extra=("--token", "s3cret"))
    launch_workers(procs, url, ["t-mid", "t-leaf"], RESONATE_TOKEN="s3cret")
    caller = procs.start(
        "call",
        [*WORKER, "call", "with-token", "mid", "t-mid"],
        {"RESONATE_URL": url, "RESONATE_TOKEN": "s3cret"},
    )
    caller.wait_for_output(r"result=2\b", timeout=20)


def test_sigterm_with_connected_workers_is_a_clean_stop(procs: Processes) -> None:
    server, url = procs.start_server()
    start_workers(procs, url, ["t-leaf"])
    server.popen.send_signal(signal.SIGTERM)
    assert server.popen.wait(timeout=20) == 0
    output = server.output()
    assert "stopped;" in output
    assert "ERROR" not in output and "Traceback" not in output, output[-2000:]


def test_a_web_page_cannot_drive_the_server(procs: Processes) -> None:
    """What a page on another site, or one behind DNS rebinding, sent: refused, 403 or 415."""
    _, url = procs.start_server()
    port = url.rsplit(":", 1)[1]
    create = json.dumps(
        {"kind": "promise.create", "head": {}, "data": {"id": "from-a-page", "timeoutAt": 2**60}}
    ).encode()
    no_cors = {"Origin": "http://evil.test", "Content-Type": "text/plain;charset=UTF-8"}
    cases = [
        (no_cors, 403, "web page at 'http://evil.test'"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "another site"),
        ({"Origin": "null"}, 403, "web page at 'null'"),
        ({"Host": f"evil.test:{port}"}, 403, f"Host 'evil.test:{port}'"),
    ]
    for headers, status, words in cases:
        answer = httpx.post(f"{url}/", content=create, headers=headers, timeout=10)
        assert answer.status_code == status, (headers, answer.text)
        assert words in answer.json()["error"] and words in answer.headers["x-asyncrpc-error"]
    # An EventSource of a page elsewhere would take the group's work: refused too.
    page = {"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"}
    assert httpx.get(f"{url}/poll/g/p", headers=page, timeout=10).status_code == 403
    # Reading the health check stays open to any page; a rebinding Host is refused there too.
    assert httpx.get(f"{url}/healthz", headers=page).json()["promises"] == 0
    assert httpx.get(f"{url}/healthz", headers={"Host": "evil.test"}).status_code == 403
    # What the SDKs send: JSON, no Origin, the address they dialled (localhost too).
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        sdk = {"Content-Type": "application/json", "Host": host}
        answer = httpx.post(f"{url}/", content=create, headers=sdk, timeout=10)
        assert answer.status_code == 200, answer.text
    assert httpx.post(f"{url}/", content=create, timeout=10).status_code == 200  # no type at all
    assert httpx.get(f"{url}/healthz").json()["promises"] == 1


def test_no_token_is_stored_in_the_database(procs: Processes, tmp_path: Path) -> None:
    """The SDK sends the token in `head.auth` of each request and action: none reaches the disk."""
    token = "tok-" + uuid.uuid4().hex
    db = tmp_path / "server.db"
    port = free_port()
    server, url = procs.start_server(db, port, extra=("--token", token))
    env = {"RESONATE_TOKEN": token}
    launch_workers(procs, url, ["t-mid", "t-leaf"], **env)
    caller = procs.start(
        "call", [*WORKER, "call", "with-token", "mid", "t-mid"], {"RESONATE_URL": url, **env}
    )
    caller.wait_for_output(r"result=2\b", timeout=20)
    bearer = {"Authorization": f"Bearer {token}"}
    head = {"corrId": "c", "version": "1", "auth": token, "Token": token}
    created = httpx.post(
        f"{url}/",
        json={"kind": "promise.create", "head": head, "data": {"id": "raw", "timeoutAt": 2**60}},
        headers=bearer,
    )
    assert created.status_code == 200
    get = {"kind": "promise.get", "head": {}, "data": {"id": "with-token"}}
    before = httpx.post(f"{url}/", json=get, headers=bearer).json()["data"]
    files = [path for path in tmp_path.iterdir() if path.name.startswith("server.db")]
    assert {path.name for path in files} >= {"server.db", "server.db-wal"}
    for path in files:
        assert token.encode() not in path.read_bytes(), path.name
    # The bodies kept without it replay to the same state.
    server.kill(signal.SIGKILL)
    _, url = procs.start_server(db, port, extra=("--token", token))
    assert httpx.post(f"{url}/", json=get, headers=bearer).json()["data"] == before


#: Ids that hold what a line reader splits on; resonate.sql takes any text as an id.
LINE_SEPARATED_ID = "order\u2028CRITICAL asyncrpc.server FORGED\u2029\u00a0x"


def test_an_id_holding_line_separators_is_delivered(procs: Processes) -> None:
    """The SDK splits an SSE event's lines as str.splitlines does: the server escapes U+2028."""
    _, url = procs.start_server()
    start_workers(procs, url, ["t-mid", "t-leaf"])
    caller = call(procs, url, LINE_SEPARATED_ID, "mid", "t-mid")
    caller.wait_for_output(r"result=2\b", timeout=20)


def test_every_message_the_stream_sends_parses_with_the_sdks_framer(procs: Processes) -> None:
    _, url = procs.start_server()
    value = {"headers": {}, "data": "v\u2028a\u2029l\u0085ue"}
    target = {"resonate:target": "poll://any@g", "k": "\u2028\u0085"}
    requests = [
        ("promise.create", {"id": LINE_SEPARATED_ID, "timeoutAt": 2**60, "tags": target}),
        ("promise.create", {"id": "plain", "timeoutAt": 2**60}),
        ("promise.register_listener", {"awaited": "plain", "address": "poll://uni@g/p"}),
        ("promise.settle", {"id": "plain", "state": "resolved", "value": value}),
    ]
    framer = SseFramer()
    messages: list[dict[str, object]] = []
    with httpx.stream("GET", f"{url}/poll/g/p", timeout=10) as stream:
        chunks = stream.iter_bytes()
        next(chunks)  # ": connected"
        for kind, data in requests:
            answer = httpx.post(f"{url}/", json={"kind": kind, "head": {}, "data": data})
            assert answer.status_code == 200, answer.text
        while len(messages) < 2:
            messages += [json.loads(payload) for payload in framer.feed(next(chunks))]
    execute, unblock = messages
    assert execute["kind"] == "execute"
    assert execute["data"]["task"]["id"] == LINE_SEPARATED_ID
    assert unblock["kind"] == "unblock"
    assert unblock["data"]["promise"]["value"]["data"] == value["data"]


def test_a_poll_id_forges_no_log_line(procs: Processes) -> None:
    server, url = procs.start_server()
    pid = quote(LINE_SEPARATED_ID, safe="")
    with httpx.stream("GET", f"{url}/poll/g/{pid}", timeout=10) as stream:
        assert stream.status_code == 200
        next(stream.iter_bytes())
    wait_until(lambda: "stream closed" in server.output(), 10, "the stream to be closed")
    lines = server.output().splitlines()  # as any reader splits them, U+2028 included
    assert not any(line.startswith("CRITICAL") for line in lines), lines
    assert any("pid=order\\u2028CRITICAL" in line for line in lines), lines
