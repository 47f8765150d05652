"""Follow log files: new complete lines since the last look, per process name.

Shared by the foreground `up` (which streams every process's output with a
prefix) and `asyncrpc logs -f`. Plain polling of plain files: it works the same
whether the launcher is this process or another one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


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
            lines += [(name, raw.decode(errors="replace").rstrip("\r")) for raw in complete]
        return lines
