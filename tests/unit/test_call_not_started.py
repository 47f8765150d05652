"""`asyncrpc invoke` never reports a start the server did not confirm (a scripted gateway)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from asyncrpc.lesson.topology import FLOWS
from asyncrpc.ops.call import EXIT_NOT_STARTED, CallNotStarted, FlowCaller
from harness.isolation import free_port

AWAIT_CHAIN = FLOWS["await-chain"]
NOT_STARTED = {
    "error": "invocation x was NOT started: the Resonate server did not confirm creating it "
    "within 1s. Send the same id again once the server answers.",
    "id": "x",
    "started": False,
}

#: (status, body) to answer, or None to hang up without answering.
Answer = tuple[int, dict[str, Any]] | None


class Gateway:
    """A gateway on loopback that answers each request as ``script`` says, noting each one."""

    def __init__(self, script: Callable[[str, str, int], Answer]) -> None:
        self.requests: list[tuple[str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self) -> None:
                gateway.requests.append((self.command, self.path))
                reply = script(self.command, self.path, len(gateway.requests))
                if reply is None:
                    self.close_connection = True
                    return
                status, body = reply
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def posts(self) -> int:
        return sum(1 for method, _ in self.requests if method == "POST")


@pytest.fixture
def gateway() -> Iterator[Callable[[Callable[[str, str, int], Answer]], Gateway]]:
    started: list[Gateway] = []

    def start(script: Callable[[str, str, int], Answer]) -> Gateway:
        fake = Gateway(script)
        fake.thread.start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.server.shutdown()
        fake.server.server_close()


def test_past_its_bound_a_start_never_confirmed_is_not_started_exit_3(gateway: Any) -> None:
    fake = gateway(lambda method, path, n: (503, NOT_STARTED))
    began = time.monotonic()
    with pytest.raises(CallNotStarted) as caught:
        FlowCaller(fake.url, start_timeout=1.0).call(AWAIT_CHAIN, "x", timeout=60)
    assert time.monotonic() - began < 5
    assert caught.value.exit_code == EXIT_NOT_STARTED == 3
    message = str(caught.value)
    assert "was NOT started" in message and "`asyncrpc invoke await-chain --id x`" in message
    assert fake.posts() >= 2  # it was sent again within the bound
    assert all(method == "POST" for method, _ in fake.requests)  # never waited on as if started


def test_a_start_confirmed_within_the_bound_gives_the_result(gateway: Any) -> None:
    fake = gateway(lambda method, path, n: (503, NOT_STARTED) if n < 3 else (200, {"message": 3}))
    caller = FlowCaller(fake.url, start_timeout=30.0)
    assert caller.call(AWAIT_CHAIN, "x", timeout=60).result == 3
    assert caller.confirmed and fake.posts() == 3


def test_a_start_whose_answer_was_lost_is_sent_again_when_the_server_does_not_know_it(
    gateway: Any,
) -> None:
    def script(method: str, path: str, n: int) -> Answer:
        if n == 1:
            return None  # the gateway went away before answering
        if method == "GET":
            return (404, {"error": "no invocation with id 'x'"})
        return (200, {"message": 3})

    fake = gateway(script)
    assert FlowCaller(fake.url).call(AWAIT_CHAIN, "x", timeout=60).result == 3
    assert [method for method, _ in fake.requests] == ["POST", "GET", "POST"]


def test_with_no_gateway_the_call_is_not_started() -> None:
    with pytest.raises(CallNotStarted, match="no gateway answers"):
        FlowCaller(f"http://127.0.0.1:{free_port()}").call(AWAIT_CHAIN, "x", timeout=5)
