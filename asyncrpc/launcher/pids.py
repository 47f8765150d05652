"""Process identity: a pid plus its start time, so a recycled pid is never signalled.

A pid alone names whichever process holds that number now. The supervisor records
each replica's start time next to its pid and checks both before every signal.
On Linux the start time comes from /proc/PID/stat; elsewhere from `ps`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


def start_time(pid: int) -> str | None:
    """An opaque token for when ``pid`` started, or None when no such process exists."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _ps_start_time(pid)
    # The command name (field 2) may hold spaces and parentheses: cut after the last ')'.
    fields = text.rsplit(")", 1)[-1].split()
    # fields[0] is field 3 (state); field 22 (starttime, in clock ticks since boot) is [19].
    if fields and fields[0] == "Z":
        return f"zombie:{fields[19]}"
    return fields[19] if len(fields) > 19 else None


def _ps_start_time(pid: int) -> str | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return None
    return out or None


@dataclass(frozen=True)
class ProcessRef:
    """A process the supervisor started: its pid and the start time recorded then."""

    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        token = start_time(pid)
        return None if token is None else cls(pid, token)

    def alive(self) -> bool:
        """True while the very same process still runs (not exited, not a recycled pid)."""
        return start_time(self.pid) == self.started

    def signal(self, sig: int, group: bool = True) -> bool:
        """Send ``sig`` to the process (and its process group) if it is still the same one."""
        if not self.alive():
            return False
        try:
            if group and os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRef:
        return cls(int(data["pid"]), str(data["started"]))  # type: ignore[arg-type]


def signal_number(name: str) -> signal.Signals:
    """`KILL`, `TERM`, `SIGKILL`, `9`... -> the signal; ValueError for anything else."""
    text = name.strip().upper()
    with contextlib.suppress(ValueError):
        return signal.Signals(int(text))
    text = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(name) from None
