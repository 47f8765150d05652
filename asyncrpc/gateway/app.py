"""The gateway's HTTP API: one route per flow, and reads of invocations.

``POST /await-chain``, ``POST /detached-chain``, ``POST /fan-out-workflow``
(from :mod:`asyncrpc.lesson.topology`) each start or re-attach to an invocation with
:func:`asyncrpc.gateway.invocations.start`. Waiting is bounded: past ``wait``
seconds the answer is 202 with the invocation id and ``/invocations/{id}`` to
ask later. Every error is JSON, ``{"error": "..."}`` with a 4xx/5xx status;
OpenAPI docs are at ``/docs``, Prometheus metrics at ``/metrics``
(:mod:`asyncrpc.gateway.metrics`). A web page of another origin may not start a
flow (:class:`~asyncrpc.runtime.browser_guard.BrowserGuard`): a page the user
opens could otherwise start invocations on their behalf.

The flow routes are the gateway's hot path, so :class:`GatewayApp`, a plain
ASGI function, answers ``POST`` to them itself and hands every other request
to the FastAPI app (:func:`create_api`), which declares the same routes for
``/docs`` and answers them identically: both call the same counted
:func:`flow_answer` and turn its errors into the same answers
(:func:`error_answer`). FastAPI's middleware, routing and request objects cost
about 45 µs of CPU per request that the flow routes do without
(docs/architecture.md). Every request, a flow's included, passes the browser
guard first, at the top of :meth:`GatewayApp.__call__`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from asyncrpc.gateway import invocations, query
from asyncrpc.gateway.membership import ClientFactory, GatewayClient, connect
from asyncrpc.gateway.metrics import CONTENT_TYPE, GatewayMetrics, authorized
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.lesson import topology
from asyncrpc.protocol.errors import (
    InvalidInvocationId,
    InvocationConflict,
    InvocationError,
    InvocationFailed,
    NotStarted,
    ServerRefused,
    ServerUnavailable,
    UnknownInvocation,
)
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.runtime import config
from asyncrpc.runtime.browser_guard import BrowserGuard, GuardMiddleware, is_loopback, refused

log = logging.getLogger(__name__)

# ── Response bodies (for the OpenAPI docs) ───────────────────────────────────


class Message(BaseModel):
    message: Any


class Pending(BaseModel):
    id: str
    state: str
    location: str


class InvocationBody(BaseModel):
    id: str
    state: str
    result: Any = None
    error: str | None = None
    function: str | None = None


class GraphBody(BaseModel):
    id: str
    steps: list[InvocationBody]


class ErrorBody(BaseModel):
    error: str


ERROR_STATUS: dict[type[InvocationError], int] = {
    InvalidInvocationId: 400,
    UnknownInvocation: 404,
    InvocationConflict: 409,
    InvocationFailed: 502,
    ServerRefused: 502,
    ServerUnavailable: 503,
}

ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": cls.__doc__ or ""}
    for cls, status in ERROR_STATUS.items()
}


def invocation_json(record: PromiseRecord) -> dict[str, Any]:
    """``{"id", "state", "result"?, "error"?, "function"?}``: an invocation or step as JSON."""
    body: dict[str, Any] = {"id": record.id, "state": str(record.state)}
    if record.state is PromiseState.RESOLVED:
        body["result"] = record.value
    elif record.error is not None:
        body["error"] = record.error
    if record.function is not None:
        body["function"] = record.function
    return body


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


#: What :class:`JSONResponse` renders a body with: the same encoder, made once.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_JSON_TYPE = (b"content-type", b"application/json")


class FlowReply(Response):
    """A flow route's answer: what ``JSONResponse(content, status, headers)`` is, made cheaply.

    The same status, headers (lowercase, in the same order: the given ones,
    ``content-length``, ``content-type``) and body bytes as starlette's
    :class:`JSONResponse`, which each flow route's answer would otherwise be; it skips
    that class's per-answer header handling and encoder set-up, and takes a body
    already rendered where the route has one ready (docs/architecture.md).
    ``tests/unit/test_gateway_fast_path.py`` compares the two.
    """

    media_type = "application/json"

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]], status_code: int = 200):
        self.status_code = status_code
        self.background = None
        self.body = body
        headers.append((b"content-length", b"%d" % len(body)))
        headers.append(_JSON_TYPE)
        self.raw_headers = headers


def json_body(content: Any) -> bytes:
    """``content`` as :class:`JSONResponse` renders it."""
    return _JSON.encode(content).encode("utf-8")


def message_body(value: Any) -> bytes:
    """``{"message": value}`` as :class:`JSONResponse` renders it; an int without the encoder."""
    if type(value) is int:
        return b'{"message":%d}' % value
    return json_body({"message": value})


def serve_docs_offline(app: FastAPI) -> None:
    """``/docs`` with Swagger UI's script and style served from the package, not a CDN.

    The machine may be offline; the files come from the swagger-ui-bundle-v2 package.
    """
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


#: What ``/docs`` says of a flow route, for flows that wait for their result and flows that do not.
FLOW_DESCRIPTION = {
    True: "Answers with the flow's result, waiting at most `wait` seconds for it.\n\n"
    "Past that: 202, and `GET /invocations/{id}` (the `Location`) has the result later.",
    False: "Answers as soon as the flow is durable (started); nobody waits for it to end.\n\n"
    "`GET /invocations/{id}/graph` shows how far it got.",
}

#: Sets of request headers whose browser-guard verdict :class:`GatewayApp` keeps.
KEPT_REFUSALS = 256

#: One flow's answer to a request: from the request's query and the gateway's client.
FlowAnswer = Callable[[Mapping[str, str], GatewayClient], Awaitable[Response]]


class GatewayApp:
    """The gateway as uvicorn runs it: the flow routes answered here, the rest by FastAPI.

    Every request passes through :meth:`__call__` before any route answers it:
    the browser guard first (a request that only reads gets the ``Host`` check
    alone, as :class:`~asyncrpc.runtime.browser_guard.GuardMiddleware` does),
    then the flow routes, then FastAPI. A check that all requests must pass goes
    there, ahead of the flow routes.
    """

    def __init__(
        self, api: FastAPI, flows: Mapping[str, FlowAnswer], guard: BrowserGuard | None = None
    ) -> None:
        self.api = api
        #: Route path -> the flow's answer, for ``POST`` only (other methods go to FastAPI).
        self.flows = dict(flows)
        #: What a browser may not send; by default, as for a gateway on loopback.
        self.guard = guard or BrowserGuard()
        #: The guard's answer by a ``POST``'s headers: a program sends the same ones each time.
        self._refusals: dict[tuple[tuple[bytes, bytes], ...], Response | None] = {}

    @property
    def state(self) -> Any:
        """The FastAPI app's state: ``client`` is the gateway's client while it runs."""
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if await refused(self.guard, scope, send):
                return
            method = scope["method"]
            answer = self.flows.get(scope["path"]) if method == "POST" else None
            if answer is not None:
                response = await self.answer_flow(answer, scope["query_string"], scope["path"])
                await response(scope, receive, send)
                return
        await self.api(scope, receive, send)

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> Response | None:
        """The browser guard's answer to a ``POST`` with these (ASGI) headers; None if it passes.

        For :mod:`asyncrpc.gateway.lane`, which answers the flow routes on the socket:
        the same status and body as :func:`~asyncrpc.runtime.browser_guard.refused` sends.
        The verdict depends on the headers alone, so it is kept for the next request with
        the same ones (at most :data:`KEPT_REFUSALS` sets of headers).
        """
        key = tuple(headers)
        try:
            return self._refusals[key]
        except KeyError:
            pass
        refusal = self.guard.refusal(headers)
        answer = None
        if refusal is not None:
            answer = Response(
                json.dumps({"error": refusal.reason}).encode(),
                refusal.status,
                media_type="application/json",
            )
        if len(self._refusals) >= KEPT_REFUSALS:
            self._refusals.clear()
        self._refusals[key] = answer
        return answer

    async def answer_flow(self, answer: FlowAnswer, query_string: bytes, path: str) -> Response:
        """A flow route's answer to a ``POST`` (to ``path``) with this query, errors included."""
        try:
            return await answer(query.arguments(query_string), self.api.state.client)
        except Exception as exc:
            return error_answer(exc, "POST", path)


def create_app(settings: GatewaySettings, make_client: ClientFactory = connect) -> GatewayApp:
    """The gateway's ASGI app: the flow routes' fast path in front of :func:`create_api`.

    Both answer a flow route through the same counted answers (``api.state.flows``),
    so ``/metrics`` counts a call whichever of them answers it.
    """
    api = create_api(settings, make_client)
    return GatewayApp(api, api.state.flows, guard_of(settings))


def guard_of(settings: GatewaySettings) -> BrowserGuard:
    """The gateway's browser guard: on a loopback address, a ``Host`` must name this machine."""
    return BrowserGuard(loopback_only=is_loopback(settings.host))


def create_api(settings: GatewaySettings, make_client: ClientFactory = connect) -> FastAPI:
    """The FastAPI app; its client to the server lives as long as the app (its lifespan).

    On its own it is the whole gateway, guarded and counted (the tests compare the
    fast path with it); ``state.flows`` holds each flow route's answer, counted in
    its metrics, for :class:`GatewayApp`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = make_client(settings)
        try:
            yield
        finally:
            await app.state.client.close()

    app = FastAPI(
        title="asyncrpc gateway",
        description="Resonate's Async RPC example: each route starts (or re-attaches to) "
        "a durable flow that crosses several worker processes.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    serve_docs_offline(app)
    app.add_middleware(GuardMiddleware, guard=guard_of(settings))

    def client(request: Request) -> GatewayClient:
        gateway_client: GatewayClient = request.app.state.client
        return gateway_client

    def connected() -> bool:
        gateway = getattr(app.state, "client", None)
        return gateway is not None and gateway.health().ok

    metrics = GatewayMetrics(connected)
    flows: dict[str, FlowAnswer] = {
        flow.route: metrics.counted(flow, flow_answer(flow, settings))
        for flow in topology.FLOWS.values()
    }
    app.state.flows = flows

    for flow in topology.FLOWS.values():
        app.add_api_route(
            flow.route,
            flow_endpoint(flows[flow.route], client),
            methods=["POST"],
            name=flow.name,
            summary=flow.summary,
            description=FLOW_DESCRIPTION[flow.waits_for_result],
            response_model=Message,
            openapi_extra=query.parameters(flow.waits_for_result),
            responses={
                **({202: {"model": Pending}} if flow.waits_for_result else {}),
                **ERRORS_DOC,
            },
        )

    @app.get(
        "/invocations/{invocation_id}",
        response_model=InvocationBody,
        response_model_exclude_unset=True,
        responses=ERRORS_DOC,
    )
    async def get_invocation(request: Request, invocation_id: str) -> JSONResponse:
        """An invocation's state, and its result once it has one."""
        invocation = await invocations.read(client(request).reader, invocation_id)
        return JSONResponse(invocation_json(invocation))

    @app.get("/invocations/{invocation_id}/graph", response_model=GraphBody, responses=ERRORS_DOC)
    async def get_graph(request: Request, invocation_id: str) -> JSONResponse:
        """Every step of an invocation's call graph, detached steps included."""
        steps = await invocations.steps(client(request).reader, invocation_id)
        return JSONResponse({"id": invocation_id, "steps": [invocation_json(s) for s in steps]})

    @app.get("/healthz", responses={503: {"model": ErrorBody}})
    async def healthz(request: Request) -> dict[str, str]:
        """200 while the gateway reaches the Resonate server; 503 with the reason while not.

        On resonate-pg, ``timers`` says whether this gateway fires the database's timers.
        """
        server = config.redacted(settings.server_url)
        gateway = client(request)
        health = gateway.health()
        if not health.ok:
            raise ServerUnavailable(f"cannot reach the Resonate server: {health.reason}")
        body = {"status": "ok", "id": settings.gateway_id, "server": server}
        timers = gateway.timers()
        return body if timers is None else {**body, "timers": timers}

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics(request: Request) -> Response:
        """Prometheus' text format; with a token set (RESONATE_TOKEN), only for its holder."""
        if not authorized(request.headers.get("authorization"), settings.token):
            return error(401, "unauthorized: send 'Authorization: Bearer <token>'")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/")
    async def index() -> dict[str, Any]:
        """What this gateway offers."""
        return {
            "flows": [
                {"name": flow.name, "route": f"POST {flow.route}", "summary": flow.summary}
                for flow in topology.FLOWS.values()
            ],
            "invocations": "GET /invocations/{id}",
            "docs": "/docs",
        }

    install_error_handlers(app)
    return app


def flow_answer(flow: topology.Flow, settings: GatewaySettings) -> FlowAnswer:
    """One flow's answer: start or re-attach, then (for a flow that waits) its result.

    Raises :class:`~asyncrpc.protocol.errors.InvocationError` and
    :class:`~asyncrpc.gateway.query.InvalidQuery`; :func:`error_answer` says how each is
    answered. A start that the server never confirms within ``settings.start_timeout``
    raises :class:`~asyncrpc.protocol.errors.NotStarted` (a 503 with ``"started": false``),
    with why the gateway cannot reach the server when it cannot.
    """

    waits = flow.waits_for_result
    started_body = json_body({"message": f"{flow.name} started"})

    # One coroutine for the whole answer: a flow's task resumes through every frame
    # it awaits in, several times a flow.
    async def answer(query_params: Mapping[str, str], gateway: GatewayClient) -> Response:
        wait = query.wait(query_params) if waits else None
        try:
            invocation = await invocations.start(
                gateway.resonate,
                gateway.channel,
                flow,
                query.invocation_id(query_params),
                request_id=gateway.request_id,
                patience=settings.start_timeout,
                caller=gateway.caller(flow.entry_group),
            )
        except NotStarted as exc:
            health = gateway.health()
            if health.ok:
                raise
            raise NotStarted(exc.invocation_id, f"{exc.reason}; {health.reason}") from None
        # The id is checked (letters, digits, '.', '_', '-'): ASCII, as a header wants.
        headers = [
            (b"x-invocation-id", invocation.id.encode("ascii")),
            (b"x-invocation-reattached", b"true" if invocation.reattached else b"false"),
        ]
        if not waits:
            return FlowReply(started_body, headers)
        done, value = await invocations.result(
            gateway.resonate,
            gateway.reader,
            invocation,
            settings.default_wait if wait is None else wait,
        )
        if done:
            return FlowReply(message_body(value), headers)
        location = f"/invocations/{invocation.id}"
        headers.append((b"location", location.encode("ascii")))
        body = json_body({"id": invocation.id, "state": "pending", "location": location})
        return FlowReply(body, headers, 202)

    return answer


def flow_endpoint(
    answer: FlowAnswer, client: Callable[[Request], GatewayClient]
) -> Callable[[Request], Awaitable[Response]]:
    """FastAPI's route handler for one flow; it reads its query itself (see :mod:`.query`).

    The same answer as :class:`GatewayApp`'s fast path gives (which is what answers these
    routes when the gateway runs); this one documents them at ``/docs``.
    """

    async def endpoint(request: Request) -> Response:
        return await answer(request.query_params, client(request))

    return endpoint


def error_answer(exc: Exception, method: str, path: str) -> JSONResponse:
    """The answer to a flow route's error, as FastAPI's exception handlers give it."""
    if isinstance(exc, InvocationError):
        return invocation_error_answer(exc)
    if isinstance(exc, query.InvalidQuery):
        return error(400, f"invalid request: {exc}")
    return unexpected_error_answer(exc, method, path)


def invocation_error_answer(exc: InvocationError) -> JSONResponse:
    """An invocation's error as its status (:data:`ERROR_STATUS`) and ``{"error": ...}``."""
    status = next((code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls)), 500)
    if isinstance(exc, InvocationFailed):
        return error(status, str(exc), id=exc.invocation.id, state=str(exc.invocation.state))
    if isinstance(exc, NotStarted):
        # Machine-readable too: a client re-sends the same id on "started": false.
        return error(status, str(exc), id=exc.invocation_id, started=False)
    return error(status, str(exc))


def unexpected_error_answer(exc: BaseException, method: str, path: str) -> JSONResponse:
    # The text of an unforeseen exception may hold paths, addresses or data: it goes
    # to the gateway's log, never to the caller.
    log.error("unexpected error answering %s %s", method, path, exc_info=exc)
    return error(500, "internal error: the gateway's log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": "..."}``: no HTML, no stack trace."""

    @app.exception_handler(InvocationError)
    async def invocation_error(_: Request, exc: InvocationError) -> JSONResponse:
        return invocation_error_answer(exc)

    @app.exception_handler(query.InvalidQuery)
    async def invalid_query(_: Request, exc: query.InvalidQuery) -> JSONResponse:
        return error(400, f"invalid request: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(describe_problem(problem) for problem in exc.errors())
        return error(400, f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code in (404, 405):
            routes = ", ".join(f"POST {flow.route}" for flow in topology.FLOWS.values())
            message = (
                f"{message}: {request.method} {request.url.path}; "
                f"routes: {routes}, GET /invocations/{{id}}, GET /docs"
            )
        return error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_answer(exc, request.method, request.url.path)


def describe_problem(problem: Mapping[str, Any]) -> str:
    """One refused input as a person reads it: what was sent, and what is valid."""
    where = ".".join(str(part) for part in problem["loc"][1:]) or "request"
    return f"{where}: {problem['msg']}"
