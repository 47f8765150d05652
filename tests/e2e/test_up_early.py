"""`up --detach` forks its template before it loads the CLI, and never leaves it behind.

A small driver runs the `asyncrpc` program's ``main`` in its own process with an
audit hook that notes, for each fork, whether Typer was loaded yet; it is the
process's child subreaper, so a process the command left behind would become its
child and show. With `--detach` the command forks once, before Typer; a bad option
(one Click refuses, one `up` refuses, a port taken) or a Ctrl-C before the handover
ends with the usual message and exit code and the early template stopped and
reaped; with ASYNCRPC_TEMPLATE=0 nothing is forked.
A good `up --detach` hands the early template its run: the supervisor is its child.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from asyncrpc.runtime import config
from asyncrpc.supervise.plan import TEMPLATE_MODULE
from asyncrpc.supervise.rundir import LAUNCHER_LOG
from tests.support.launcher import READY_TIMEOUT, Launcher

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only"),
]

ROOT = Path(__file__).resolve().parents[2]
#: PR_SET_CHILD_SUBREAPER: orphans of the command become the driver's children.
DRIVER = r"""
import ctypes, json, os, signal, sys
import psutil
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
report_path, args = sys.argv[1], sys.argv[2:]
forks = []
interrupt = float(os.environ.get("DRIVER_INTERRUPT_S", "0"))
def hook(event, _):
    if event == "os.fork":
        forks.append("typer" in sys.modules)
        if interrupt and len(forks) == 1:  # Ctrl-C this long after the first fork
            signal.setitimer(signal.ITIMER_REAL, interrupt)
def ctrl_c(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, ctrl_c)
sys.addaudithook(hook)
sys.argv = ["asyncrpc", *args]
code = 0
try:
    from asyncrpc.entrypoints.command import main
    main()
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
except KeyboardInterrupt:
    code = 130
left = [p.pid for p in psutil.Process().children(recursive=True) if p.status() != "zombie"]
with open(report_path, "w") as report:
    json.dump({"code": code, "forks": forks, "left": left}, report)
"""


def drive(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[dict[str, object], str]:
    """Run `asyncrpc ARGS...` in the driver: its report, and what it wrote to stderr."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(report), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert report.exists(), done.stdout + done.stderr
    return json.loads(report.read_text()), done.stderr


@pytest.mark.parametrize(
    ("bad", "code", "message"),
    [
        (["--server-port", "0"], 2, "use a whole number from 1 to 65535"),  # Click's
        (["--server", "nowhere"], 2, "--server nowhere: valid values are embedded"),  # `up`'s
    ],
)
def test_a_bad_option_stops_the_early_template_and_says_what_was_wrong(
    launcher: Launcher, tmp_path: Path, bad: list[str], code: int, message: str
) -> None:
    found, stderr = drive(tmp_path, launcher.env, "up", "--detach", *bad)
    assert found["code"] == code
    assert message in " ".join(stderr.split()), stderr  # Typer's box wraps its lines
    assert found["forks"] == [False]  # the early template, before Typer was imported
    assert found["left"] == []  # stopped and reaped: nothing left, not even a zombie
    assert not launcher.rundir.state_file.exists()


def test_a_port_taken_stops_the_early_template_and_names_the_port(
    launcher: Launcher, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = ["up", "--detach", "--server-port", str(launcher.server_port)]
        found, stderr = drive(tmp_path, launcher.env, *args, "--gateway-port", str(port))
    assert found["code"] == 1
    assert f"port {port} on 127.0.0.1 (the gateway) is already in use" in stderr
    assert found["forks"] == [False] and found["left"] == []


def test_a_ctrl_c_before_the_handover_stops_the_early_template(
    launcher: Launcher, tmp_path: Path
) -> None:
    """Ctrl-C while the command still loads the CLI: the template it forked goes with it."""
    env = {**launcher.env, "DRIVER_INTERRUPT_S": "0.01"}
    found, _ = drive(tmp_path, env, "up", "--detach", *launcher.ports())
    assert found["code"] in (1, 130)  # Click's "Aborted!" once it runs, else the interrupt
    assert found["forks"] == [False] and found["left"] == []
    assert not launcher.rundir.state_file.exists()


def test_without_the_template_nothing_is_forked_early(launcher: Launcher, tmp_path: Path) -> None:
    env = {**launcher.env, config.ENV_TEMPLATE: "0"}
    found, stderr = drive(tmp_path, env, "up", "--detach", "--server-port", "0")
    assert found["code"] == 2 and "use a whole number from 1 to 65535" in stderr
    assert found["forks"] == [] and found["left"] == []


def test_a_good_up_hands_its_run_to_the_early_template(launcher: Launcher, tmp_path: Path) -> None:
    args = ["up", "--detach", *launcher.ports(), "--ready-timeout", READY_TIMEOUT, "b"]
    found, stderr = drive(tmp_path, launcher.env, *args)
    assert found["code"] == 0, stderr
    assert found["forks"] == [False]  # one fork, the template's, before Typer
    state = launcher.rundir.read_state()
    assert state is not None
    template = psutil.Process(state.supervisor.pid).parent()
    assert template is not None and template.pid in found["left"]  # type: ignore[operator]
    title = " ".join(template.cmdline()).split()
    assert title == [sys.executable, "-m", TEMPLATE_MODULE]  # as a template forked later
    held = {os.readlink(f"/proc/{template.pid}/fd/{fd}") for fd in (1, 2)}
    assert held == {str(launcher.rundir.log_for(LAUNCHER_LOG))}
    status = launcher.status()
    assert {node["name"] for node in status["nodes"]} == {"server", "b.1"}
