"""Read and follow the replicas' log files: their last lines, and new lines since the last look.

The one reader of log files: the foreground `up` streams every replica's output
with a prefix (:class:`LogFollower`), `asyncrpc logs` and the dashboard show the
last lines (:func:`log_files`, :func:`last_lines`, :func:`follow_logs`), and a
replica or detached supervisor that fails to start is explained by the end of
its log (:func:`tail`). All of them read with :func:`read_lines`. Plain polling
of plain files: it works the same whether the supervisor is this process or
another one.
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
#: Lines of a log shown when a replica or the supervisor fails to start.
TAIL_LINES = 20


def read_lines(path: Path, offset: int = 0, count: int | None = None) -> list[str]:
    """The last ``count`` lines (all when None) of ``path`` from byte ``offset`` on.

    A file that cannot be read (not written yet, or removed meanwhile) has no lines.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    lines = log_lines(text)
    return lines if count is None else lines[max(len(lines) - count, 0) :]


def tail(path: Path, offset: int = 0, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file from byte ``offset`` on, as one text."""
    return "\n".join(read_lines(path, offset, lines))


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
    return [(name, line) for name, path in files for line in read_lines(path, count=count)]


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
