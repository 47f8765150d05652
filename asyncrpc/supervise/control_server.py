"""The control server: a tiny FastAPI app over the supervisor.

Served by the supervisor process (:mod:`asyncrpc.supervise.supervisor_process`)
on 127.0.0.1; the endpoints and the token check are described in
:mod:`asyncrpc.supervise.control_client`, which the other commands use. The app
stays thin: it parses, calls the supervisor, turns its typed answers into JSON
and a CommandError into a JSON error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from asyncrpc.runtime.errors import CommandError, UsageError
from asyncrpc.supervise.control_client import TOKEN_HEADER, UNAUTHORIZED, token_matches
from asyncrpc.supervise.pids import signal_number
from asyncrpc.supervise.supervisor import Supervisor
from asyncrpc.supervise.targets import parse_node_selector


class KillRequest(BaseModel):
    node: str
    signal: str = "KILL"


class StartRequest(BaseModel):
    node: str
    delay: float | None = None
    add: bool = False


class NodeRequest(BaseModel):
    node: str


def launcher_error_response(error: CommandError) -> JSONResponse:
    """A CommandError as JSON: 400 for a wrong name or value, 409 for the system's state."""
    status = 400 if isinstance(error, UsageError) else 409
    return JSONResponse({"error": str(error), "exit_code": error.exit_code}, status)


#: What builds the control server's app: ``make_app`` (tests hand in a slower one).
ControlAppBuilder = Callable[[Supervisor, str, Callable[[], None]], FastAPI]


def make_app(supervisor: Supervisor, token: str, on_down: Callable[[], None]) -> FastAPI:
    """The control server over ``supervisor``; ``on_down`` is called after `down` stopped all.

    The supervisor process builds it in a worker thread; it touches nothing but the new app.
    """
    app = FastAPI(title="asyncrpc control server", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Any:
        if not token_matches(request.headers.get(TOKEN_HEADER, ""), token):
            return JSONResponse(
                {"error": "missing or wrong control token"}, status_code=UNAUTHORIZED
            )
        return await call_next(request)

    @app.exception_handler(CommandError)
    async def launcher_error(_: Request, error: CommandError) -> JSONResponse:
        return launcher_error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        # The command that asked prints this; "Internal Server Error" would tell it nothing.
        return JSONResponse(
            {"error": f"the supervisor failed: {type(error).__name__}: {error}", "exit_code": 1},
            500,
        )

    @app.get("/status")
    async def status() -> dict[str, Any]:
        return supervisor.snapshot().to_json()

    @app.post("/kill")
    async def kill(body: KillRequest) -> dict[str, Any]:
        try:
            sig = signal_number(body.signal)
        except ValueError:
            raise UsageError(f"unknown signal {body.signal!r}: use KILL or TERM.") from None
        return {"killed": await supervisor.kill(parse_node_selector(body.node), sig)}

    @app.post("/start")
    async def start(body: StartRequest) -> dict[str, Any]:
        result = await supervisor.start(parse_node_selector(body.node), body.delay, body.add)
        return result.to_json()

    @app.post("/restart")
    async def restart(body: NodeRequest) -> dict[str, Any]:
        return {"restarted": await supervisor.restart(parse_node_selector(body.node))}

    @app.post("/down")
    async def down() -> dict[str, Any]:
        stopped = await supervisor.stop_all()
        on_down()
        return {"stopped": stopped}

    return app
