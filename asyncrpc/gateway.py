"""The HTTP gateway: where an ephemeral HTTP request becomes a durable flow.

One route per flow (``POST /await-chain``, ``POST /detached-chain``,
``POST /fan-out-workflow``, from :mod:`asyncrpc.topology`), each calling the
same :mod:`asyncrpc.flows` functions the CLI uses. The gateway is a Resonate
process too (group ``gateway``): it uses the SDK's async API directly on
uvicorn's event loop, and its poll stream is how it hears that a flow it
waits on has finished.

Waiting is bounded: past ``wait`` seconds the answer is 202 with the
invocation id and ``/invocations/{id}`` to ask later. Every error is JSON,
``{"error": "..."}`` with a 4xx/5xx status; OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
import uvloop
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from resonate.handle import ResonateHandle
from resonate.resonate import Resonate
from starlette.exceptions import HTTPException as StarletteHTTPException

from asyncrpc import config, flows, topology
from asyncrpc.node import (
    SettingsError,
    check_node_id,
    check_server_url,
    configure_logging,
    default_node_id,
    join,
    ready_line,
)
from asyncrpc.serving import GracefulServer, bind

log = logging.getLogger(__name__)

#: Seconds a gateway re-checks, by polling, invocations it waits on (in case
#: the poll stream dropped a notification, e.g. while the server restarted).
REFRESH_SECONDS = 5.0
#: The longest ``wait`` a request may ask for.
MAX_WAIT = 3600.0


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway needs, validated."""

    server_url: str
    gateway_id: str
    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_GATEWAY_PORT
    token: str | None = None
    default_wait: float = flows.DEFAULT_WAIT
    request_timeout: float = flows.DEFAULT_REQUEST_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def gateway_settings(
    env: Mapping[str, str],
    *,
    host: str | None = None,
    port: int | None = None,
    server_url: str | None = None,
    gateway_id: str | None = None,
    random_hex: Callable[[int], str] = secrets.token_hex,
) -> GatewaySettings:
    """Options first, then environment variables, then defaults."""
    if port is None:
        configured = env.get(config.ENV_GATEWAY_PORT)
        if configured is not None and not configured.isdigit():
            raise SettingsError(
                f"{config.ENV_GATEWAY_PORT} must be a port number, got {configured!r}"
            )
        port = int(configured) if configured else config.DEFAULT_GATEWAY_PORT
    if not 0 < port < 65536:
        raise SettingsError(f"--port must be between 1 and 65535, got {port}")
    return GatewaySettings(
        server_url=check_server_url(config.server_url(env, server_url)),
        gateway_id=check_node_id(
            gateway_id
            or env.get(config.ENV_NODE_ID)
            or default_node_id(topology.GATEWAY, random_hex)
        ),
        host=host or config.DEFAULT_HOST,
        port=port,
        token=env.get(config.ENV_TOKEN) or None,
    )


# ── The client: a Resonate process in group `gateway` ─────────────────────────


@dataclass
class Client:
    """The gateway's Resonate client and whether its poll stream is connected.

    ``creations``: what its network saw each ``promise.create`` find (see
    :class:`~asyncrpc.flows.CreationLedger`); without it, starting a flow
    asks the server first.
    """

    resonate: Resonate
    connected: Callable[[], bool]
    creations: flows.CreationLedger | None = None


ClientFactory = Callable[[GatewaySettings], Client]


def connect(settings: GatewaySettings) -> Client:
    """Join the server as ``gateway``; requests give up on an unreachable server."""
    network = flows.bounded_network(settings.server_url, settings.token, settings.request_timeout)
    resonate, stream = join(
        settings.server_url,
        group=topology.GATEWAY_GROUP,
        pid=settings.gateway_id,
        token=settings.token,
        network=network,
        subscription_refresh_secs=REFRESH_SECONDS,
    )
    return Client(resonate, stream.connected.is_set, network.creations)


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


ERROR_STATUS: dict[type[flows.FlowError], int] = {
    flows.InvalidInvocationId: 400,
    flows.UnknownInvocation: 404,
    flows.InvocationConflict: 409,
    flows.FlowFailed: 502,
    flows.ServerRefused: 502,
    flows.ServerUnavailable: 503,
}

ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": cls.__doc__ or ""}
    for cls, status in ERROR_STATUS.items()
}

InvocationIdQuery = Annotated[
    str | None,
    Query(
        description="Invocation id: start, or re-attach to, this invocation "
        f"({flows.VALID_ID_HINT}). Default: the flow's fixed id."
    ),
]
WaitQuery = Annotated[
    float | None,
    Query(
        ge=0,
        le=MAX_WAIT,
        description="Seconds to wait for the result before answering 202 "
        f"(default {flows.DEFAULT_WAIT:g}).",
    ),
]


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(settings: GatewaySettings, make_client: ClientFactory = connect) -> FastAPI:
    """The FastAPI app; its Resonate client lives as long as the app (its lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = make_client(settings)
        try:
            yield
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(app.state.client.resonate.stop(), 5.0)

    app = FastAPI(
        title="asyncrpc gateway",
        description="Resonate's Async RPC example: each route starts (or re-attaches to) "
        "a durable flow that crosses several worker processes.",
        lifespan=lifespan,
    )

    def gateway_client(request: Request) -> Client:
        return request.app.state.client

    def client(request: Request) -> Resonate:
        return gateway_client(request).resonate

    for flow in topology.FLOWS.values():
        app.add_api_route(
            flow.route,
            flow_endpoint(flow, settings, gateway_client),
            methods=["POST"],
            name=flow.name,
            summary=flow.summary,
            response_model=Message,
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
        invocation = await flows.inspect(client(request), invocation_id)
        return JSONResponse(invocation.to_json())

    @app.get("/invocations/{invocation_id}/graph", response_model=GraphBody, responses=ERRORS_DOC)
    async def get_graph(request: Request, invocation_id: str) -> JSONResponse:
        """Every step of an invocation's call graph, detached steps included."""
        steps = await flows.call_graph(client(request), invocation_id)
        return JSONResponse({"id": invocation_id, "steps": [step.to_json() for step in steps]})

    @app.get("/healthz", responses={503: {"model": ErrorBody}})
    async def healthz(request: Request) -> dict[str, str]:
        """200 once the gateway's poll stream to the Resonate server is connected."""
        if not request.app.state.client.connected():
            raise flows.ServerUnavailable(
                f"not connected to the Resonate server at {settings.server_url} (yet)"
            )
        return {"status": "ok", "id": settings.gateway_id, "server": settings.server_url}

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


def flow_endpoint(
    flow: topology.Flow, settings: GatewaySettings, client: Callable[[Request], Client]
) -> Callable[..., Awaitable[JSONResponse]]:
    """The route handler for one flow."""

    async def begin(
        request: Request, id: str | None
    ) -> tuple[Resonate, ResonateHandle[Any], dict[str, str]]:
        gateway = client(request)
        resonate = gateway.resonate
        handle, existed = await flows.start(resonate, flow, id, gateway.creations)
        headers = {
            "X-Invocation-Id": await handle.id(),
            "X-Invocation-Reattached": "true" if existed else "false",
        }
        return resonate, handle, headers

    if not flow.waits_for_result:

        async def started(request: Request, id: InvocationIdQuery = None) -> JSONResponse:
            """Answers as soon as the flow is durable (started); nobody waits for it to end.

            `GET /invocations/{id}/graph` shows how far it got.
            """
            _, _, headers = await begin(request, id)
            return JSONResponse({"message": f"{flow.name} started"}, headers=headers)

        return started

    async def finished(
        request: Request, id: InvocationIdQuery = None, wait: WaitQuery = None
    ) -> JSONResponse:
        """Answers with the flow's result, waiting at most `wait` seconds for it.

        Past that: 202, and `GET /invocations/{id}` (the `Location`) has the result later.
        """
        resonate, handle, headers = await begin(request, id)
        done, value = await flows.result(
            resonate, handle, settings.default_wait if wait is None else wait
        )
        if done:
            return JSONResponse({"message": value}, headers=headers)
        location = f"/invocations/{headers['X-Invocation-Id']}"
        return JSONResponse(
            {"id": headers["X-Invocation-Id"], "state": "pending", "location": location},
            status_code=202,
            headers={**headers, "Location": location},
        )

    return finished


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": "..."}``: no HTML, no stack trace."""

    @app.exception_handler(flows.FlowError)
    async def flow_error(_: Request, exc: flows.FlowError) -> JSONResponse:
        status = next((code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls)), 500)
        if isinstance(exc, flows.FlowFailed):
            return error(status, str(exc), id=exc.invocation.id, state=exc.invocation.state)
        return error(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'request'}: {problem['msg']}"
            for problem in exc.errors()
        )
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
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error(500, f"internal error ({type(exc).__name__}): {exc}")


# ── Running it ───────────────────────────────────────────────────────────────


async def announce_when_ready(
    server: uvicorn.Server, app: FastAPI, settings: GatewaySettings
) -> None:
    """Print the ready line once uvicorn listens and the poll stream is connected."""
    while not (server.started and getattr(app.state, "client", None) is not None):
        await asyncio.sleep(0.05)
    while not app.state.client.connected():
        await asyncio.sleep(0.05)
    print(
        ready_line(
            topology.GATEWAY,
            topology.GATEWAY_GROUP,
            settings.gateway_id,
            settings.server_url,
            url=settings.url,
        ),
        flush=True,
    )


async def serve(settings: GatewaySettings, sock: socket.socket) -> None:
    """Run the gateway on ``sock`` until SIGTERM/SIGINT."""
    app = create_app(settings)
    server = GracefulServer(uvicorn.Config(app, log_config=None, lifespan="on"))
    announcer = asyncio.create_task(announce_when_ready(server, app, settings))
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()


def run(settings: GatewaySettings) -> int:
    """Run the gateway in the foreground; 0 after a clean stop. Raises PortInUse."""
    sock = bind(settings.host, settings.port)
    configure_logging()
    try:
        uvloop.run(serve(settings, sock))
    finally:
        sock.close()
    return 0
