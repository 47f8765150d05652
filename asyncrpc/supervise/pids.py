"""Process identity: a pid plus its create time, so a recycled pid is never signalled.

A pid alone names whichever process holds that number now. The supervisor records
each replica's create time next to its pid and checks both before every signal.
psutil reads both the same way on Linux and macOS, so nothing here depends on /proc.

The create time is taken as time since boot: psutil gives it on the wall clock (boot
time plus the kernel's ticks since boot), and reads the boot time afresh, so a step of
the wall clock (NTP, a virtual machine resumed) would change every token at once and
make every running replica look gone to ``down`` and to the supervisor's stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def start_time(pid: int) -> str | None:
    """An opaque token for when ``pid`` started, or None when no such live process exists.

    A zombie (exited, not yet reaped) counts as gone: it can take no signal and
    does no work.
    """
    import psutil  # here, not at the top: `asyncrpc status` and `kill` never load it

    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return f"{process.create_time() - psutil.boot_time():.2f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


@dataclass(frozen=True)
class ProcessRef:
    """A process the supervisor started: its pid and the create time recorded then."""

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
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRef:
        return cls(int(data["pid"]), str(data["started"]))


def signal_number(name: str) -> signal.Signals:
    """`KILL`, `TERM`, `SIGKILL`, `9`... -> the signal; ValueError for anything else."""
    text = name.strip().upper()
    if text.isascii() and text.isdigit():
        with contextlib.suppress(ValueError):
            return signal.Signals(int(text))
    text = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(name) from None
