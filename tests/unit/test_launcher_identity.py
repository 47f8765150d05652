"""Port holders come from psutil alone, and the launcher's modules name no /proc path.

macOS has no /proc, so the launcher must never read it itself: the ``no_proc``
fixture (tests/conftest.py) fails a test in which asyncrpc's own code opens a
/proc path (psutil may read /proc on Linux; that is its portable business).
tests/e2e/test_launcher_identity.py checks identity, liveness and signals on a
process it starts.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import psutil
import pytest

import asyncrpc.supervise.pids as pids
import asyncrpc.supervise.ports as ports


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
