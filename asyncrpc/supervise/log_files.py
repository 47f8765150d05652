"""Read and follow the replicas' log files: new complete lines since the last look.

Shared by the foreground `up` (which streams every replica's output with a
prefix) and `asyncrpc logs` (:func:`log_files`, :func:`last_lines`,
:func:`follow_logs`). Plain polling of plain files: it works the same whether
the supervisor is this process or another one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asyncrpc.runtime.errors import UsageError
from asyncrpc.runtime.log_lines import log_lines, one_line
from asyncrpc.supervise.plan import ReplicaSpec
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.targets import NodeSelector, parse_node_selector

#: Seconds between two looks at the log files while following them.
FOLLOW_INTERVAL = 0.2


@dataclass
class LogFollower:
    """Remembers how far each file was read; :meth:`poll` returns the new lines."""

    offsets: dict[Path, int] = field(default_factory=dict)
    partial: dict[Path, bytes] = field(default_factory=dict)

    def skip_existing(self, paths: Iterable[Path]) -> None:
        """Start following ``paths`` from their current end."""
        for path in paths:
            try:
                self.offsets[path] = path.stat().st_size
            except OSError:
                self.offsets[path] = 0

    def poll(self, files: Iterable[tuple[str, Path]], final: bool = False) -> list[tuple[str, str]]:
        """(name, line) for every complete line written since the last poll.

        With ``final`` an unterminated last line is returned too.
        """
        lines: list[tuple[str, str]] = []
        for name, path in files:
            offset = self.offsets.get(path, 0)
            try:
                size = path.stat().st_size
                if size < offset:
                    offset = 0
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            self.offsets[path] = offset + len(data)
            data = self.partial.pop(path, b"") + data
            *complete, rest = data.split(b"\n")
            if rest and final:
                complete.append(rest)
            elif rest:
                self.partial[path] = rest
            lines += [(name, one_line(raw.decode(errors="replace"))) for raw in complete]
        return lines


def log_files(rundir: RunDir, selector: NodeSelector | None = None) -> list[tuple[str, Path]]:
    """(replica name, log file) of every replica ``selector`` matches, in start order."""
    found = []
    for name in rundir.log_names():
        with contextlib.suppress(UsageError):
            parsed = parse_node_selector(name)
            spec = ReplicaSpec(parsed.node, parsed.replica or 1)
            if selector is None or selector.matches(spec.node, spec.replica):
                found.append((spec.order, name))
    return [(name, rundir.log_for(name)) for _, name in sorted(found)]


def last_lines(files: Iterable[tuple[str, Path]], count: int | None) -> list[tuple[str, str]]:
    """(replica name, line) for the last ``count`` lines of each file (all when None)."""
    lines: list[tuple[str, str]] = []
    for name, path in files:
        text = log_lines(path.read_bytes().decode(errors="replace"))
        shown = text if count is None else text[max(len(text) - count, 0) :]
        lines += [(name, line) for line in shown]
    return lines


def follow_logs(
    rundir: RunDir,
    selector: NodeSelector | None,
    running: Callable[[], bool],
    sleeper: Callable[[float], None] = time.sleep,
) -> Iterator[list[tuple[str, str]]]:
    """Batches of new lines from now on, until ``running()`` turns False (then a last batch).

    Replicas that start later are picked up as their log files appear.
    """
    follower = LogFollower()
    follower.skip_existing(path for _, path in log_files(rundir, selector))
    while True:
        still = running()
        yield follower.poll(log_files(rundir, selector), final=not still)
        if not still:
            return
        sleeper(FOLLOW_INTERVAL)
