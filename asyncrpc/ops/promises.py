"""What the server knows: promises by pattern, one promise, an invocation's call graph.

`asyncrpc promises search`, `promises get` and `tree` are these functions; the CLI only
prints what they return, and the dashboard can call the same ones. Each reads the
server that :func:`server_to_read` chooses: ``--server-url``, else the server of the
supervisor running in the run directory, else ``RESONATE_URL``. Nothing else: with
none of the three there is no server to read, and guessing the default address
would read whatever system happens to listen there (another run directory's, whose
invocations may have the very same fixed ids) without a word.

Reading fails with a :class:`~asyncrpc.runtime.errors.CommandError` that says why
(server unreachable, refused, no such promise); a bad pattern or state is a
:class:`~asyncrpc.runtime.errors.UsageError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from asyncrpc.protocol.call_graph import CallNode
from asyncrpc.protocol.errors import InvocationError, UnknownInvocation
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.readers.promises import (
    InvalidQuery,
    PromisePage,
    PromiseQuery,
    search_promises,
    state_filter,
)
from asyncrpc.readers.server_reader import ServerReader
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError, NothingRunning, UsageError
from asyncrpc.supervise.rundir import RunDir

#: Where the server to read was named, as messages say it.
FROM_OPTION = "--server-url"
FROM_RUN_DIR = "the supervisor of the run directory"
FROM_ENV = config.ENV_SERVER_URL


@dataclass(frozen=True)
class ServerToRead:
    """The server a read goes to, its token, and where its URL came from."""

    url: str
    token: str | None
    source: str


def server_to_read(
    server_url: str | None,
    rundir: RunDir,
    env: Mapping[str, str],
    alive: Callable[[RunDir], str | None] | None = None,
) -> ServerToRead:
    """``--server-url``, else the run directory's running system's server, else RESONATE_URL.

    ``alive`` gives the server URL of the supervisor running in a run directory (None
    when none runs there); by default it reads the state file and checks that its
    supervisor is still that very process. NothingRunning when no server is named.
    """
    token = env.get(config.ENV_TOKEN) or None
    if server_url:
        return ServerToRead(server_url.rstrip("/"), token, FROM_OPTION)
    running = (alive or running_server)(rundir)
    if running:
        return ServerToRead(running, token, f"{FROM_RUN_DIR} {rundir.path}")
    from_env = env.get(config.ENV_SERVER_URL)
    if from_env:
        return ServerToRead(from_env.rstrip("/"), token, FROM_ENV)
    raise NothingRunning(
        f"nothing runs in {rundir.path}, so there is no server to read. Start it with "
        f"`asyncrpc up`, name its run directory with --run-dir, or name a server with "
        f"--server-url (or {config.ENV_SERVER_URL})."
    )


def running_server(rundir: RunDir) -> str | None:
    """The server URL of the supervisor that runs in ``rundir`` now, if one does."""
    state = rundir.read_state()
    if state is None or not state.supervisor.alive():
        return None
    return state.snapshot.server_url


@contextmanager
def reading(server: ServerToRead) -> Iterator[ServerReader]:
    """A reader of ``server``; what it raises becomes a CommandError naming the server."""
    try:
        with ServerReader(server.url, server.token) as reader:
            yield reader
    except UnknownInvocation as error:
        raise CommandError(f"{error} on {config.redacted(server.url)}") from None
    except InvocationError as error:
        raise CommandError(f"{error} (server from {server.source})") from None


def query_of(pattern: str, state: str | None, limit: int | None) -> PromiseQuery:
    """The query a person typed; UsageError (exit 2) on a bad state or limit."""
    try:
        return PromiseQuery(pattern, state_filter(state) if state else None, limit)
    except InvalidQuery as error:
        raise UsageError(str(error)) from None


def search(server: ServerToRead, query: PromiseQuery) -> PromisePage:
    """`asyncrpc promises search`: the newest promises matching ``query``."""
    with reading(server) as reader:
        return search_promises(reader, query)


def get(server: ServerToRead, promise_id: str) -> PromiseRecord:
    """`asyncrpc promises get`: one promise; CommandError when there is none."""
    with reading(server) as reader:
        record = reader.get(promise_id)
    if record is None:
        raise CommandError(
            f"no promise with id {promise_id!r} on {config.redacted(server.url)}. "
            "Find ids with `asyncrpc promises search '*'`."
        )
    return record


def call_graph(server: ServerToRead, invocation_id: str) -> CallNode:
    """`asyncrpc tree`: an invocation's call graph; CommandError when there is none."""
    with reading(server) as reader:
        return reader.call_graph(invocation_id)
