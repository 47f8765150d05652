"""End-to-end: the `asyncrpc` launcher commands with the real server, gateway and nodes.

Each test runs the CLI as a subprocess on free ports with its own run directory,
and always stops what it started (`asyncrpc down`, then a kill of every process
the launcher's state file ever listed, checked by pid + start time).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from asyncrpc.lesson import topology
from asyncrpc.readers.server_reader import ServerReader
from asyncrpc.runtime import config
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir, RunDirBusy
from asyncrpc.supervise.status import Phase
from harness.isolation import free_port, isolated_env
from harness.processes import ASYNCRPC, Processes
from harness.waiting import wait_until
from tests.support.forking import FORKS_BESIDE_LIBUV_WORKERS
from tests.support.launcher import READY_TIMEOUT, Launcher


def alive(refs: list[ProcessRef]) -> list[int]:
    return [ref.pid for ref in refs if ref.alive()]


def private_files(rundir: RunDir) -> dict[str, int]:
    """The mode of the run directory and of everything in it but the server's database."""
    paths = [rundir.path, *rundir.path.rglob("*")]
    return {
        str(path.relative_to(rundir.path)): stat.S_IMODE(path.stat().st_mode)
        for path in paths
        if not path.name.startswith(rundir.db.name)
    }


def test_up_call_every_flow_status_logs_down(launcher: Launcher) -> None:
    secret = "e2e-token-3f9a1c2e"
    launcher.env[config.ENV_TOKEN] = secret
    up = launcher.up()
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"http://127.0.0.1:{launcher.gateway_port}" in up.stdout

    status = launcher.status()
    names = {node["name"]: node for node in status["nodes"]}
    assert list(names) == [topology.SERVER, topology.GATEWAY, *(f"{n}.1" for n in topology.NODES)]
    assert {node["state"] for node in names.values()} == {"running"}
    assert names["b.1"]["group"] == topology.NODES["b"].group
    assert status["server_url"] == f"http://127.0.0.1:{launcher.server_port}"
    assert status["gateway_url"] == f"http://127.0.0.1:{launcher.gateway_port}"
    processes = [ProcessRef(n["pid"], n["pid_started"]) for n in status["nodes"]]
    assert len(alive(processes)) == len(processes)

    # The token reaches every replica through its environment, never its command line.
    state = launcher.rundir.read_state()
    assert state is not None
    for ref in [*processes, state.supervisor]:
        command = " ".join(psutil.Process(ref.pid).cmdline())
        assert command and secret not in command, command
    refused = httpx.post(status["server_url"], json={}, trust_env=False)
    assert refused.status_code == 401  # the server did get the token
    modes = private_files(launcher.rundir)
    assert modes.pop(".") == 0o700 and modes.pop("logs") == 0o700
    assert "launcher.json" in modes and "plan.json" in modes and "logs/server.log" in modes
    assert set(modes.values()) == {0o600}, modes

    for flow in topology.FLOWS.values():
        result = launcher.run("call", flow.name, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        answer = json.loads(result.stdout)
        assert answer["result"] == flow.expected_result == 3
        assert answer["id"].startswith(flow.default_id)

    fresh = launcher.run("call", "await-chain")
    assert fresh.returncode == 0, fresh.stderr
    assert "result: 3" in fresh.stdout
    invocation = re.search(r"as invocation (\S+)", fresh.stdout)
    assert invocation is not None, fresh.stdout
    again = launcher.run("call", "await-chain", "--id", invocation[1], "--json")
    assert json.loads(again.stdout) | {"seconds": 0} == {
        "flow": "await-chain",
        "id": invocation[1],
        "result": 3,
        "seconds": 0,
        "entry_result": None,
    }

    ps = launcher.run("ps")
    assert ps.returncode == 0 and "c.1" in ps.stdout and "running" in ps.stdout
    logs = launcher.run("logs", "c")
    assert logs.returncode == 0 and config.READY_MARKER in logs.stdout

    down = launcher.run("down")
    assert down.returncode == 0, down.stderr
    assert alive(processes) == []
    assert alive(launcher.seen) == []
    after = launcher.run("status")
    assert after.returncode == 1 and "nothing is running" in after.stderr


def test_a_killed_node_is_replaced_and_the_call_still_returns_3(
    launcher: Launcher, tmp_path: Path
) -> None:
    up = launcher.up("await-chain", "--delay", "c=5", "--ttl", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    server_url = launcher.status()["server_url"]

    invocation = "e2e-crash"
    output = tmp_path / "call.out"
    call = launcher.start_background(
        "call", "await-chain", "--id", invocation, "--json", "--timeout", "180", output=output
    )

    with ServerReader(server_url, timeout=5) as reader:

        def c_is_running() -> bool:
            promises = reader.search(tags={"resonate:origin": invocation})
            if call.poll() is not None:
                raise AssertionError(f"call ended early: {output.read_text()}")
            return any(p.function == topology.NODES["c"].function for p in promises)

        wait_until(c_is_running, 120, "c's step to start (b then waits for it)")
    killed = launcher.run("kill", "b")
    assert killed.returncode == 0, killed.stderr
    b = next(node for node in launcher.status()["nodes"] if node["name"] == "b.1")
    assert b["state"] == "killed"
    assert not ProcessRef(b["pid"], b["pid_started"]).alive()

    started = launcher.run("start", "b")
    assert started.returncode == 0, started.stderr
    b = next(node for node in launcher.status()["nodes"] if node["name"] == "b.1")
    assert (b["state"], b["restarts"]) == ("running", 1)

    assert call.wait(timeout=200) == 0, output.read_text()
    assert json.loads(output.read_text())["result"] == 3


def test_foreground_up_on_a_real_server_streams_output_and_ctrl_c_leaves_nothing(
    launcher: Launcher, tmp_path: Path, procs: Processes
) -> None:
    server, server_url = procs.start_server()
    output = tmp_path / "up.out"
    up = launcher.start_background(
        "up", "a", "--server-url", server_url, "--ready-timeout", READY_TIMEOUT, output=output
    )

    def ready() -> bool:
        if up.poll() is not None:
            raise AssertionError(f"up exited: {output.read_text()}")
        state = launcher.rundir.read_state()
        return state is not None and state.snapshot.phase is Phase.READY

    wait_until(ready, 150, "the foreground launcher to be ready")
    launcher.remember()
    status = launcher.status()
    assert [node["name"] for node in status["nodes"]] == ["a.1"]
    assert (status["server_url"], status["server_embedded"]) == (server_url, False)
    processes = [ProcessRef(n["pid"], n["pid_started"]) for n in status["nodes"]]
    wait_until(lambda: config.READY_MARKER in output.read_text(), 30, "a.1's output streamed")
    refused = launcher.run("kill", "server")
    assert refused.returncode == 1 and "not started by this supervisor" in refused.stderr

    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=60) == 0, output.read_text()
    text = output.read_text()
    assert any(
        line.startswith("a.1") and config.READY_MARKER in line for line in text.splitlines()
    ), text
    assert alive(processes) == []
    assert launcher.rundir.read_state() is None
    assert server.alive(), "the launcher must not touch a server it did not start"


def of_run(run_dir: Path) -> list[psutil.Process]:
    """Every process that belongs to the run in ``run_dir`` (by its environment or command)."""
    found = []
    for process in psutil.process_iter():
        try:
            mine = process.environ().get(config.ENV_RUN_DIR) == str(run_dir)
            if mine or str(run_dir) in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


#: Moments of a foreground `up await-chain` start, by the line that shows it has come, and
#: whether replicas are forked from the template: the template started (the server's fork on
#: its way), the server's log begun, then (spawning, whose start is slower: the moment lasts)
#: the server ready and the gateway started.
START_MOMENTS = [
    ("launcher | started the template", True),
    ("--- asyncrpc launcher: starting server", True),
    ("server is ready", False),
    ("started gateway", False),
]


@pytest.mark.parametrize(
    ("moment", "forked"), START_MOMENTS, ids=["template", "server-fork", "server-ready", "gateway"]
)
def test_ctrl_c_at_any_moment_of_the_start_stops_everything_and_exits_130(
    tmp_path: Path, moment: str, forked: bool
) -> None:
    """As a terminal's Ctrl-C: SIGINT to `up`'s process group once ``moment`` shows."""
    run_dir = tmp_path / "run"
    env = isolated_env(run_dir, COLUMNS="200", **{config.ENV_TEMPLATE: "1" if forked else "0"})
    ports = [free_port(), free_port(), int(env[config.ENV_DASHBOARD_PORT])]
    output = tmp_path / "up.out"
    with output.open("wb") as sink:
        up = subprocess.Popen(
            [
                *ASYNCRPC,
                "up",
                "await-chain",
                "--server-port",
                str(ports[0]),
                "--gateway-port",
                str(ports[1]),
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: dict[int, psutil.Process] = {}
    try:

        def come() -> bool:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(up.pid).children(recursive=True):
                    seen.setdefault(child.pid, child)
            if up.poll() is not None:
                raise AssertionError(f"up ended first:\n{output.read_text()}")
            return moment in output.read_text()

        wait_until(come, 150, moment, poll=0.01)
        os.killpg(up.pid, signal.SIGINT)
        code = up.wait(timeout=90)
        text = output.read_text()
        assert "ready; Ctrl-C stops it all" not in text, (
            "the start was over: pick an earlier moment"
        )
        assert code == 130, text
        assert "Traceback" not in text and "never retrieved" not in text, text
        assert "interrupted: stopped everything that had started" in text, text

        def nothing_left() -> bool:
            running = [p for p in seen.values() if p.is_running() and p.status() != "zombie"]
            return not running and not of_run(run_dir)

        wait_until(nothing_left, 15, f"every process of the run to end ({of_run(run_dir)})")
        listening = {
            c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN
        }
        assert not listening & set(ports)
        assert RunDir(run_dir).read_state() is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.pid, signal.SIGKILL)
        for process in [*seen.values(), *of_run(run_dir)]:
            with contextlib.suppress(psutil.Error):
                process.kill()


@FORKS_BESIDE_LIBUV_WORKERS
def test_a_handed_lock_stays_held_across_the_hand_over(tmp_path: Path) -> None:
    """A child given the claimed descriptor holds the very lock: no moment is it free."""
    rundir = RunDir(tmp_path / "run")
    lock = rundir.claim()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the detached supervisor's part: adopt the descriptor, then hold it
        os.close(read)
        try:
            rundir.adopt(lock.fd)
            os.write(write, b"adopted")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 16) == b"adopted"
        lock.release()  # the `up` that handed it over exits
        with pytest.raises(RunDirBusy, match=rf"\(pid {child}\)"):
            rundir.claim()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
        os.close(read)
    rundir.claim().release()  # its holder died: free again


def test_two_ups_at_once_in_one_run_directory_exactly_one_runs(launcher: Launcher) -> None:
    ups = []
    for _ in range(2):
        ports = ["--server-port", str(free_port()), "--gateway-port", str(free_port())]
        command = [*ASYNCRPC, "up", "a", "--detach", *ports, "--ready-timeout", READY_TIMEOUT]
        ups.append(
            (
                ports,
                subprocess.Popen(
                    command,
                    env=launcher.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    results = [(ports, up.pid, *up.communicate(timeout=300), up.returncode) for ports, up in ups]
    launcher.remember()
    won = [result for result in results if result[4] == 0]
    lost = [result for result in results if result[4] != 0]
    assert len(won) == 1 and len(lost) == 1, results
    (ports, winner, _, _, _), (_, _, _, refusal, code) = won[0], lost[0]
    assert code == 1
    state = launcher.rundir.read_state()
    assert state is not None
    holder = re.search(r"another `asyncrpc up` \(pid (\d+)\) is starting or running", refusal)
    assert holder is not None, refusal
    assert int(holder[1]) in (winner, state.supervisor.pid), (refusal, winner)
    status = launcher.status()
    assert status["server_url"] == f"http://127.0.0.1:{ports[1]}"
    assert json.loads(launcher.rundir.plan_file.read_text())["server_port"] == int(ports[1])


def test_a_node_that_exits_at_start_shows_its_last_lines(launcher: Launcher) -> None:
    result = launcher.up("a", env={config.ENV_DELAY: "soon"})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "a.1 exited with code" in result.stderr and "at start" in result.stderr
    assert config.ENV_DELAY in result.stderr  # the node's own message, from its log
    assert launcher.rundir.read_state() is None
    assert alive(launcher.seen) == []
