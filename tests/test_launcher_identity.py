"""Process identity, liveness, signals and port holders come from psutil alone.

macOS has no /proc, so the launcher must never read it itself: these tests run
the identity and port functions with an audit hook that fails on any open of a
/proc path made by the launcher's own code (psutil may read /proc on Linux; that
is its portable business).
"""

from __future__ import annotations

import ast
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import psutil
import pytest

import asyncrpc.supervise.pids as pids
import asyncrpc.supervise.ports as ports
from asyncrpc.supervise.pids import ProcessRef
from harness.waiting import wait_until

LAUNCHER = Path(pids.__file__).parent
PSUTIL = Path(psutil.__file__).parent
#: Opens of /proc paths made by the launcher's code (not psutil's) while a test runs.
PROC_OPENS: list[str] = []
WATCHING = False


def _opener(frame: FrameType | None) -> Path | None:
    """The file of the first frame, innermost first, in the launcher or in psutil."""
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(LAUNCHER) or path.is_relative_to(PSUTIL):
            return path
        frame = frame.f_back
    return None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not WATCHING or event != "open" or not str(args[0]).startswith("/proc"):
        return
    opener = _opener(sys._getframe(1))
    if opener is not None and opener.is_relative_to(LAUNCHER):
        PROC_OPENS.append(f"{args[0]} by {opener.name}")


sys.addaudithook(_audit)  # hooks cannot be removed; this one only watches inside `no_proc`


@pytest.fixture
def no_proc() -> Iterator[None]:
    global WATCHING
    PROC_OPENS.clear()
    WATCHING = True
    try:
        yield
    finally:
        WATCHING = False
    assert PROC_OPENS == [], "the launcher read /proc itself"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.usefixtures("no_proc")
def test_identity_liveness_and_signals_without_proc(sleeper: subprocess.Popen[bytes]) -> None:
    ref = ProcessRef.of(sleeper.pid)
    assert ref is not None and ref.alive()
    assert ref.started == f"{psutil.Process(sleeper.pid).create_time():.6f}"

    impostor = ProcessRef(sleeper.pid, "another create time")
    assert not impostor.alive()
    assert impostor.signal(signal.SIGKILL) is False
    assert sleeper.poll() is None  # a pid with another create time is never signalled

    assert ref.signal(signal.SIGKILL) is True
    wait_until(lambda: not ref.alive(), 10, "the killed process to be gone")  # a zombie is gone
    sleeper.wait()
    assert ProcessRef.of(sleeper.pid) is None
    assert ref.signal(signal.SIGTERM) is False


@pytest.mark.usefixtures("no_proc")
def test_the_port_holder_is_named_without_proc() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        held = ports.holder(port)
        message = ports.in_use_message("the server", "127.0.0.1", port, "--server-port")
    assert held is not None and held.startswith(f"pid {psutil.Process().pid} (")
    assert held in message
    assert ports.holder(port) is None  # closed: nobody holds it


@pytest.mark.parametrize("module", [pids, ports], ids=["pids", "ports"])
def test_the_modules_name_no_proc_path_and_run_no_ps(module: object) -> None:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    assert not [s for s in strings if isinstance(s, str) and s.startswith("/proc")]
    assert "subprocess" not in imported
    assert "psutil" in imported
