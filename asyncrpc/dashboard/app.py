"""The dashboard's HTTP face: the page, its JSON API and its event feed (a FastAPI app).

Handlers stay thin: each parses, calls the function the CLI's command calls
(the supervisor's ``kill`` / ``start`` / ``restart`` as the control server
does, :func:`~asyncrpc.ops.call.call_flow`, the log tail of
:mod:`asyncrpc.supervise.log_files`, the server reader (:mod:`asyncrpc.readers.server_reader`),
the demo's own checks) and answers JSON; a CommandError or InvocationError
becomes ``{"error": ...}`` with a 4xx/5xx status.

- ``GET /``: the page; ``/static/...``: its script and style.
- ``GET /api/session``: whether the request is signed in; ``POST /api/session {"token"}``:
  sign in with the run's secret (or ``RESONATE_TOKEN``), for a session cookie.
- ``GET /api/events``: the live feed (``status``, ``invocations``, ``demo`` events).
- ``GET /api/topology``: the flows, their nodes and the demo's choices.
- ``POST /api/replicas/{name}/kill|start|restart``.
- ``POST /api/flows/{flow} {"id"?}``: call a flow (200 with the result, or 202 while it runs).
- ``GET /api/invocations``, ``GET /api/invocations/{id}/graph[?tasks=true]``.
- ``GET /api/promises?q=PATTERN&state=&role=&cursor=&limit=``: a page of promises, newest
  first (:mod:`asyncrpc.readers.promises`); ``GET /api/promises/{id}``: one promise decoded,
  its task and why it waits; ``GET /api/overview``: counts, invocation rate, recent errors,
  schedules.
- ``GET /api/snapshot``: what the page shows first (the index embeds it once signed in).
- ``GET /api/logs/{name}?lines=N``: the last lines of a replica's log.
- ``GET /api/demo``, ``POST /api/demo {"flow", "victim", "delay"}``, ``POST /api/demo/stop``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from asyncrpc.dashboard.access import Access
from asyncrpc.dashboard.demo_run import DemoRun
from asyncrpc.dashboard.events import Source, feed
from asyncrpc.dashboard.invocation_json import attempts_of, graph_json, recent_invocations
from asyncrpc.dashboard.promise_json import overview, promise_detail, promise_page
from asyncrpc.dashboard.shared_poll import SharedPoll
from asyncrpc.demo.scenario import choose, default_killed_node, killable_nodes
from asyncrpc.gateway.app import ERROR_STATUS
from asyncrpc.lesson import topology
from asyncrpc.ops.call import CallStart, call_flow
from asyncrpc.protocol.errors import InvocationError
from asyncrpc.readers.promises import (
    DEFAULT_LIMIT,
    Cursor,
    InvalidQuery,
    PromiseQuery,
    role_filter,
    state_filter,
)
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.runtime import numbers
from asyncrpc.runtime.errors import CommandError, UsageError
from asyncrpc.supervise.control_server import launcher_error_response
from asyncrpc.supervise.log_files import last_lines, log_files
from asyncrpc.supervise.supervisor import Supervisor
from asyncrpc.supervise.targets import parse_node_selector

STATIC = Path(__file__).parent / "static"
#: Seconds a call from the page is waited for before the answer is 202 (it goes on).
QUICK_ANSWER = 0.3
#: Seconds a call from the page may take in all.
CALL_TIMEOUT = 120.0
#: Lines of a log the page gets at most.
MAX_LOG_LINES = 1000
#: What ``?lines=`` accepts, read as every number is (:mod:`asyncrpc.runtime.numbers`).
LOG_LINES = numbers.WholeNumber(1, MAX_LOG_LINES)
#: Failed calls from the page that the list of invocations keeps showing.
KEPT_FAILURES = 10
#: Promises a page of the promise browser holds at most.
MAX_PAGE = 200
#: What ``?limit=`` accepts.
PAGE_LIMIT = numbers.WholeNumber(1, MAX_PAGE)
#: Seconds the first paint waits for the server's invocations before showing the last known.
FIRST_PAINT_WAIT = 1.0
#: Where the index carries the first snapshot, once signed in.
SNAPSHOT_SLOT = "<!--first-snapshot-->"
#: What an API request that is not signed in is told.
NOT_SIGNED_IN = (
    "the dashboard wants its sign-in token: open the address `asyncrpc ui` prints; a program "
    "sends the token after its #token= (or RESONATE_TOKEN) as `Authorization: Bearer TOKEN`"
)
#: Seconds between two reads of the invocations, shared by every open page.
INVOCATIONS_INTERVAL = 0.5


class CallRequest(BaseModel):
    id: str | None = None


class DemoRequest(BaseModel):
    flow: str
    victim: str | None = None
    delay: float = 5.0


class SessionRequest(BaseModel):
    token: str


@dataclass
class Dashboard:
    """What the handlers work with: the supervisor, a server reader, the demo, the rules."""

    supervisor: Supervisor
    reader: AsyncServerReader
    demo: DemoRun
    access: Access
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: Calls from the page that failed after their first answer, newest last.
    failures: list[dict[str, str]] = field(default_factory=list)
    _invocations: list[dict[str, Any]] = field(default_factory=list)
    #: Calls from the page still running (a reference keeps each task alive).
    _calls: set[asyncio.Future[Any]] = field(default_factory=set)
    #: The invocations, read once per interval for all open pages' event streams.
    invocations: SharedPoll = field(init=False)

    def __post_init__(self) -> None:
        empty: dict[str, Any] = {"invocations": [], "error": None, "failed_calls": []}
        self.invocations = SharedPoll(self.invocations_json, INVOCATIONS_INTERVAL, empty)

    def status_json(self) -> dict[str, Any]:
        """The supervisor's snapshot; uptimes in whole seconds, so it changes once a second."""
        data = self.supervisor.snapshot().to_json()
        for node in data["nodes"]:
            if node["uptime"] is not None:
                node["uptime"] = int(node["uptime"])
        return data

    async def invocations_json(self) -> dict[str, Any]:
        """The recent invocations; while the server is unreachable, the last ones and why."""
        try:
            found = await recent_invocations(self.reader)
        except InvocationError as error:
            return {"invocations": self._invocations, "error": str(error), **self._failed()}
        self._invocations = [summary.to_json() for summary in found]
        return {"invocations": self._invocations, "error": None, **self._failed()}

    def _failed(self) -> dict[str, Any]:
        return {"failed_calls": self.failures[-KEPT_FAILURES:]}

    async def snapshot_json(self, clock: Any = time.time) -> dict[str, Any]:
        """What the page draws before its event feed opens: replicas, flows, invocations.

        ``now`` is the dashboard's clock (ms), which the page measures every duration by.
        """
        try:
            invocations = await asyncio.wait_for(self.invocations_json(), FIRST_PAINT_WAIT)
        except TimeoutError:
            invocations = {"invocations": self._invocations, "error": None, **self._failed()}
        return {
            "now": int(clock() * 1000),
            "status": self.status_json(),
            "topology": topology_json(self.supervisor.plan.server_node),
            "invocations": invocations,
        }

    async def call(self, flow_name: str, invocation_id: str | None) -> tuple[CallStart, Any]:
        """`asyncrpc call` on a thread; (start, result), or (start, pending task) past a moment."""
        loop = asyncio.get_running_loop()
        announced: asyncio.Future[CallStart] = loop.create_future()

        def on_start(start: CallStart) -> None:
            loop.call_soon_threadsafe(announced.set_result, start)

        plan = self.supervisor.plan
        calling = asyncio.ensure_future(
            asyncio.to_thread(
                call_flow,
                flow_name,
                invocation_id=invocation_id or None,
                timeout=CALL_TIMEOUT,
                gateway_url=plan.gateway_url,
                env=self.supervisor.env,
                rundir=plan.rundir,
                on_start=on_start,
            )
        )
        waiting: set[asyncio.Future[Any]] = {calling, announced}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if calling.done() and not announced.done():
            calling.result()  # raises why the call could not start
        start = await announced
        done, _ = await asyncio.wait({calling}, timeout=QUICK_ANSWER)
        if done:
            return start, calling.result().result
        self._calls.add(calling)
        calling.add_done_callback(self._calls.discard)
        calling.add_done_callback(lambda task: self._remember_failure(start, task))
        return start, calling

    def _remember_failure(self, start: CallStart, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failures.append(
                {"id": start.invocation_id, "flow": start.flow.name, "error": str(task.exception())}
            )


def demo_victims(flow: topology.Flow, server_node: str | None) -> list[str]:
    """The nodes the page's demo can kill in ``flow``: the flow's, the gateway, and the
    server this run has (the demo starts a server of the same kind; none when the run
    uses a server it did not start)."""
    return [
        node
        for node in killable_nodes(flow)
        if node not in topology.SERVER_NODES or node == server_node
    ]


def topology_json(server_node: str | None) -> dict[str, Any]:
    """The flows and what the page offers for each (call, the nodes the demo may kill).

    The demo's fields say ``victim``, as the `asyncrpc demo crash --victim` option they feed.
    """
    return {
        "flows": [
            {
                "name": flow.name,
                "summary": flow.summary,
                "nodes": list(flow.nodes),
                "groups": [topology.NODES[node].group for node in flow.nodes],
                "victims": demo_victims(flow, server_node),
                "default_victim": default_killed_node(flow),
            }
            for flow in topology.FLOWS.values()
        ],
        "gateway_group": topology.GATEWAY_GROUP,
    }


def make_app(dashboard: Dashboard) -> FastAPI:
    """The dashboard's app over ``dashboard``."""
    app = FastAPI(title="asyncrpc dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    access = dashboard.access
    supervisor = dashboard.supervisor

    @app.middleware("http")
    async def check_access(request: Request, call_next: Any) -> Any:
        refusal = access.refusal(request)
        if refusal is not None:
            return JSONResponse({"error": refusal.reason}, refusal.status)
        path = request.url.path
        if path.startswith("/api/") and path != "/api/session" and not access.authorized(request):
            return JSONResponse({"error": NOT_SIGNED_IN}, 401)
        return await call_next(request)

    @app.exception_handler(CommandError)
    async def launcher_error(_: Request, error: CommandError) -> JSONResponse:
        return launcher_error_response(error)

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_: Request, error: InvalidQuery) -> JSONResponse:
        return JSONResponse({"error": str(error)}, 400)

    @app.exception_handler(InvocationError)
    async def invocation_error(_: Request, error: InvocationError) -> JSONResponse:
        status = next((code for cls, code in ERROR_STATUS.items() if isinstance(error, cls)), 500)
        return JSONResponse({"error": str(error)}, status)

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> HTMLResponse:
        page = (STATIC / "index.html").read_text()
        if access.authorized(request):
            first = json.dumps(await dashboard.snapshot_json(), default=str)
            # In a <script> element only "</" and "<!--" could end it or change how it reads.
            first = first.replace("<", "\\u003c")
            slot = f'<script type="application/json" id="first-snapshot">{first}</script>'
            page = page.replace(SNAPSHOT_SLOT, slot)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/session")
    async def session(request: Request) -> dict[str, bool]:
        return {"authorized": access.authorized(request)}

    @app.post("/api/session")
    async def log_in(body: SessionRequest) -> Response:
        if not access.accepts(body.token):
            return JSONResponse({"error": f"wrong token: {NOT_SIGNED_IN}"}, 401)
        response = Response(status_code=204)
        response.set_cookie(
            access.cookie, access.open_session(), httponly=True, samesite="strict", path="/"
        )
        return response

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        async def status() -> Any:
            return dashboard.status_json()

        async def demo() -> Any:
            return dashboard.demo.to_json()

        async def closed() -> bool:
            return dashboard.closing.is_set() or await request.is_disconnected()

        sources = [
            Source("status", status, 0.25),
            Source("invocations", dashboard.invocations.available, 0.25),
            Source("demo", demo, 0.25),
        ]

        async def stream() -> AsyncIterator[str]:
            async with dashboard.invocations.watching():
                async for frame in feed(sources, closed):
                    yield frame

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return dashboard.status_json()

    @app.get("/api/topology")
    async def flows() -> dict[str, Any]:
        return topology_json(supervisor.plan.server_node)

    @app.get("/api/snapshot")
    async def snapshot() -> dict[str, Any]:
        return await dashboard.snapshot_json()

    @app.post("/api/replicas/{name}/kill")
    async def kill(name: str) -> dict[str, Any]:
        return {"killed": await supervisor.kill(parse_node_selector(name), signal.SIGKILL)}

    @app.post("/api/replicas/{name}/start")
    async def start(name: str) -> dict[str, Any]:
        return (await supervisor.start(parse_node_selector(name))).to_json()

    @app.post("/api/replicas/{name}/restart")
    async def restart(name: str) -> dict[str, Any]:
        return {"restarted": await supervisor.restart(parse_node_selector(name))}

    @app.post("/api/flows/{flow}")
    async def call(flow: str, body: CallRequest | None = None) -> JSONResponse:
        start, outcome = await dashboard.call(flow, body.id if body else None)
        answer = {"id": start.invocation_id, "flow": start.flow.name}
        if isinstance(outcome, asyncio.Future):
            return JSONResponse({**answer, "state": "pending"}, 202)
        return JSONResponse({**answer, "state": "resolved", "result": outcome})

    @app.get("/api/invocations")
    async def invocations() -> dict[str, Any]:
        return await dashboard.invocations_json()

    @app.get("/api/invocations/{invocation_id}/graph")
    async def graph(invocation_id: str, tasks: bool = False) -> dict[str, Any]:
        root = await dashboard.reader.call_graph(invocation_id)
        return graph_json(root, await attempts_of(dashboard.reader, root) if tasks else None)

    @app.get("/api/promises")
    async def promises(
        q: str = "*", state: str = "", role: str = "", cursor: str = "", limit: str = ""
    ) -> dict[str, Any]:
        try:
            size = PAGE_LIMIT.read(limit, "limit") if limit else DEFAULT_LIMIT
        except numbers.NumberError as error:
            raise UsageError(str(error)) from None
        query = PromiseQuery(
            pattern=q.strip() or "*",
            state=state_filter(state) if state else None,
            limit=size,
            role=role_filter(role) if role else None,
            after=Cursor.decode(cursor) if cursor else None,
        )
        return await promise_page(dashboard.reader, query)

    @app.get("/api/promises/{promise_id:path}")
    async def promise(promise_id: str) -> dict[str, Any]:
        replicas = supervisor.snapshot().replicas
        return await promise_detail(dashboard.reader, promise_id, replicas)

    @app.get("/api/overview")
    async def overview_json() -> dict[str, Any]:
        return (await overview(dashboard.reader, int(time.time() * 1000))).to_json()

    @app.get("/api/logs/{name}")
    async def logs(name: str, lines: str = "200") -> Any:
        try:
            count = LOG_LINES.read(lines, "lines")
        except numbers.NumberError as error:
            raise UsageError(str(error)) from None
        selector = parse_node_selector(name)
        files = log_files(supervisor.plan.rundir, selector)
        if not files:
            return JSONResponse({"error": f"no log for {selector} yet."}, 404)
        found = await asyncio.to_thread(last_lines, files, count)
        many = len(files) > 1
        return {
            "name": str(selector),
            "lines": [f"{who} | {line}" if many else line for who, line in found],
        }

    @app.get("/api/demo")
    async def demo_state() -> dict[str, Any]:
        return dashboard.demo.to_json()

    @app.post("/api/demo", status_code=202)
    async def demo_start(body: DemoRequest) -> dict[str, Any]:
        scenario = choose(body.flow, body.victim, body.delay)
        offered = demo_victims(scenario.flow, supervisor.plan.server_node)
        if scenario.killed_node not in offered:
            raise UsageError(
                f"this run has no {scenario.killed_node} for the demo to kill; "
                f"the nodes it can lose here: {', '.join(offered)}."
            )
        await dashboard.demo.start(scenario)
        return dashboard.demo.to_json()

    @app.post("/api/demo/stop")
    async def demo_stop() -> dict[str, Any]:
        await dashboard.demo.stop()
        return dashboard.demo.to_json()

    return app
