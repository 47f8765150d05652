"""The supervisor's side of the template (:mod:`asyncrpc.entrypoints.template`).

:class:`TemplateClient` starts the template process, asks it to fork replicas
and turns its exit reports into :class:`ForkedProcess` objects, which the
supervisor watches like the processes it spawns itself (``pid``,
``returncode``, ``await wait()``). Forking is used only where it is safe
(:func:`template_enabled`: Linux, and not switched off with
ASYNCRPC_TEMPLATE=0); elsewhere, and for the `postgres` node, which execs
Postgres, the supervisor spawns as before.

A fork whose caller gave up waiting (the supervisor stops during its start)
is cancelled at the template, and a child forked all the same is stopped
when its start is reported: :meth:`TemplateClient.close` waits for every
answer and every such child, so stopping never leaves a replica nobody
watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import TEMPLATE_MODULE, template_enabled

__all__ = ["TEMPLATE_MODULE", "ForkedProcess", "TemplateClient", "template_enabled"]

#: How a replica's exit code reads when the template died before reporting it.
UNKNOWN_EXIT = 255
#: How often an orphaned child (its template gone) is checked for exit.
ORPHAN_POLL = 0.1
#: Seconds a child forked for a caller that gave up gets to exit after SIGTERM.
ABANDONED_GRACE = 5.0


def template_parent(ref: ProcessRef) -> ProcessRef | None:
    """The template ``ref`` was forked from, when its parent is one (a detached supervisor's is)."""
    import psutil  # only `down` asks: it waits for the template too

    try:
        parent = psutil.Process(ref.pid).parent()
        if parent is None or TEMPLATE_MODULE not in " ".join(parent.cmdline()):
            return None
    except psutil.Error:
        return None
    return ProcessRef.of(parent.pid)


class TemplateUnavailable(CommandError):
    """The template cannot fork (it failed to start or has exited)."""


class ForkedProcess:
    """A replica forked by the template: its pid, and its exit code once reported."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class TemplateClient:
    """One template process and the replicas it forked."""

    def __init__(
        self,
        process: asyncio.subprocess.Process | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self._reader = reader
        self._writer = writer
        self._numbers = itertools.count(1)
        self._pending: dict[int, asyncio.Future[ForkedProcess]] = {}
        self._children: dict[int, ForkedProcess] = {}
        #: Requests whose caller stopped waiting: their children are stopped when they start.
        self._abandoned: set[int] = set()
        #: Children forked for such requests, until they have exited.
        self._unwanted: dict[int, ForkedProcess] = {}
        self._gone = False
        self._listener = asyncio.create_task(self._listen())

    @classmethod
    async def start(
        cls,
        env: Mapping[str, str],
        log: IO[bytes],
        python: str = sys.executable,
        run_dir: Path | None = None,
    ) -> TemplateClient:
        """Start a template; with ``run_dir`` it also runs the CLI's short commands there."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                python,
                "-m",
                TEMPLATE_MODULE,
                str(theirs.fileno()),
                *([str(run_dir)] if run_dir is not None else []),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        return cls(process, reader, writer)

    @classmethod
    async def attach(cls, channel: socket.socket) -> TemplateClient:
        """The client of the template this process was forked from (a detached `up`)."""
        reader, writer = await asyncio.open_unix_connection(sock=channel)
        return cls(None, reader, writer)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def fork(
        self, args: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path
    ) -> ForkedProcess:
        """Fork `asyncrpc ARGS...` with ``env``, output appended to ``log``."""
        if self._gone:
            raise TemplateUnavailable("the template has exited")
        number = next(self._numbers)
        future: asyncio.Future[ForkedProcess] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        request = {"start": number, "args": list(args), "env": dict(env)}
        request |= {"log": str(log), "cwd": str(cwd)}
        try:
            self._writer.write(json.dumps(request).encode() + b"\n")
            await self._writer.drain()
            return await asyncio.shield(future)
        except (ConnectionError, RuntimeError) as error:
            self._pending.pop(number, None)
            raise TemplateUnavailable(f"the template has exited: {error}") from None
        except asyncio.CancelledError:  # the request went out: its child may start anyway
            self._abandon(number, future)
            raise

    def _abandon(self, number: int, future: asyncio.Future[ForkedProcess]) -> None:
        """The caller of fork ``number`` stopped waiting: cancel it, or stop its child."""
        if future.done():
            if not future.cancelled() and future.exception() is None:
                self._stop_unwanted(future.result())
            return
        self._abandoned.add(number)
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(json.dumps({"cancel": number}).encode() + b"\n")

    def _stop_unwanted(self, child: ForkedProcess) -> None:
        if child.returncode is None:
            self._unwanted[child.pid] = child
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    async def _listen(self) -> None:
        try:
            while line := await self._reader.readline():
                self._dispatch(json.loads(line))
        except (ConnectionError, ValueError):
            pass
        finally:
            self._gone = True
            for number, future in self._pending.items():
                if number in self._abandoned:
                    future.cancel()  # nobody waits for it any more
                elif not future.done():
                    future.set_exception(TemplateUnavailable("the template has exited"))
            self._pending.clear()
            for child in self._children.values():
                asyncio.get_running_loop().create_task(self._watch_orphan(child))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "started" in message:
            child = self._children[message["pid"]] = ForkedProcess(message["pid"])
            future = self._pending.pop(message["started"], None)
            if message["started"] in self._abandoned:
                self._abandoned.discard(message["started"])
                self._stop_unwanted(child)
            elif future is not None and not future.done():
                future.set_result(child)
        elif "exited" in message:
            exited = self._children.pop(message["exited"], None)
            if exited is not None:
                exited.exited(int(message["code"]))
                self._unwanted.pop(exited.pid, None)
        elif "failed" in message:
            future = self._pending.pop(message["failed"], None)
            if message["failed"] in self._abandoned:
                self._abandoned.discard(message["failed"])
                if future is not None:
                    future.cancel()  # nobody waits for it any more
            elif future is not None and not future.done():
                future.set_exception(CommandError(f"fork failed: {message.get('error')}"))

    @staticmethod
    async def _watch_orphan(child: ForkedProcess) -> None:
        """Its template is gone, so nobody reports its exit: notice it, code unknown."""
        from asyncrpc.supervise.pids import ProcessRef

        ref = ProcessRef.of(child.pid)
        while ref is not None and ref.alive():
            await asyncio.sleep(ORPHAN_POLL)
        child.exited(UNKNOWN_EXIT)

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait for the answer to every fork asked for, then for the unwanted children to exit.

        A child still running ``ABANDONED_GRACE`` seconds after its SIGTERM is killed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending and not self._gone and loop.time() < deadline:
            await asyncio.sleep(0.02)
        unwanted = list(self._unwanted.values())
        if not unwanted:
            return
        _, late = await asyncio.wait(
            [asyncio.ensure_future(c.wait()) for c in unwanted], timeout=ABANDONED_GRACE
        )
        for child in unwanted:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
        if late:
            await asyncio.wait(late, timeout=ABANDONED_GRACE)

    async def close(self, timeout: float = 5.0) -> None:
        """Close the channel; the template exits on EOF (killed if it does not).

        Every fork asked for is answered (and its child stopped if nobody wants it) first.
        """
        await self.settle()
        with contextlib.suppress(Exception):
            self._writer.close()
        if self.process is None:  # our parent: it exits once this process has
            self._listener.cancel()
        else:
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._listener, timeout)
