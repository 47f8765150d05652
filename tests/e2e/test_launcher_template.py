"""The template: replicas forked from it are processes of their own that inherit nothing.

One `up --detach b --respawn 0` (supervisor, server and b.1, all forked): the supervisor
and b.1 come from the template, the server from the server template the template forked
first; b.1 has its own session and log, holds none of either template's files or sockets,
and a `kill b` ends b.1 alone, which the supervisor notices (the template reports the exit)
and replaces with a new fork. `down` returns once both templates have exited.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.plan import TEMPLATE_MODULE
from asyncrpc.supervise.template_client import TemplateClient
from harness.waiting import wait_until
from tests.support.launcher import Launcher

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")


@linux_only
def test_the_template_reports_each_childs_exit_code(tmp_path: Path) -> None:
    """A forked command's own exit code comes back, and a kill -9 comes back as -9."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    async def scenario() -> tuple[int, int, int]:
        with (tmp_path / "template.log").open("ab") as log:
            template = await TemplateClient.start(env, log)
        try:
            fork = template.fork
            version = await fork(["--version"], env, tmp_path / "version.log", tmp_path)
            wrong = await fork(["no-such-command"], env, tmp_path / "wrong.log", tmp_path)
            down = "http://127.0.0.1:9"  # nothing listens: the node keeps retrying
            args = ["node", "b", "--server-url", down]
            node = await fork(args, env, tmp_path / "b.log", tmp_path)
            codes = await asyncio.gather(version.wait(), wrong.wait())
            assert node.returncode is None
            os.kill(node.pid, signal.SIGKILL)
            return codes[0], codes[1], await node.wait()
        finally:
            await template.close()

    assert asyncio.run(scenario()) == (0, 2, -signal.SIGKILL)
    assert (tmp_path / "version.log").read_text().startswith("asyncrpc ")
    assert "No such command" in (tmp_path / "wrong.log").read_text()


def open_files(pid: int) -> dict[int, str]:
    """fd -> what it points at (a path, `socket:[inode]`, `pipe:[inode]`...)."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return found


def replicas(launcher: Launcher) -> dict[str, dict[str, object]]:
    return {node["name"]: node for node in launcher.status()["nodes"]}


@linux_only
def test_a_forked_replica_is_its_own_process_and_is_replaced_alone(launcher: Launcher) -> None:
    up = launcher.up("b", "--respawn", "0")
    assert up.returncode == 0, up.stdout + up.stderr
    before = replicas(launcher)
    assert set(before) == {"server", "b.1"}
    pid = int(before["b.1"]["pid"])  # type: ignore[call-overload]
    server_pid = before["server"]["pid"]
    state = launcher.rundir.read_state()
    assert state is not None

    process = psutil.Process(pid)
    template = process.parent()
    assert template is not None and template.pid != state.supervisor.pid
    assert " ".join(template.cmdline()).split() == [sys.executable, "-m", TEMPLATE_MODULE]
    # A detached supervisor is forked from the template too: the replicas' sibling.
    assert psutil.Process(state.supervisor.pid).ppid() == template.pid
    # The server, from the server template, which the template forked.
    server_template = psutil.Process(int(server_pid)).parent()  # type: ignore[call-overload]
    assert server_template is not None and server_template.ppid() == template.pid
    assert " ".join(server_template.cmdline()).split()[-2:] == [TEMPLATE_MODULE, "--server"]
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert "-m asyncrpc node b " in " ".join(process.cmdline())

    log = str(launcher.rundir.log_for("b.1"))
    files = open_files(pid)
    assert files[0] == os.devnull and files[1] == log and files[2] == log
    # Anonymous inodes (epoll, eventfd) are all named alike; sockets, pipes and files are not.
    held = {
        name
        for parent in (template, server_template)
        for name in open_files(parent.pid).values()
        if not name.startswith("anon_")
    }
    inherited = held - {os.devnull}
    assert not inherited & set(files.values()), (inherited, files)
    assert str(launcher.rundir.log_for("launcher")) not in files.values()
    # Nor does the supervisor hold a template's end of their channel: when a template dies,
    # the supervisor must read the end of it at once.
    supervisor_sockets = {
        name for name in open_files(state.supervisor.pid).values() if name.startswith("socket:")
    }
    assert not supervisor_sockets & held, (supervisor_sockets, held)

    killed = launcher.run("kill", "b")
    assert killed.returncode == 0, killed.stdout + killed.stderr

    def replaced() -> bool:
        now = replicas(launcher)
        return now["b.1"]["state"] == "running" and now["b.1"]["pid"] != pid

    wait_until(replaced, timeout=60, what="b.1 to be replaced")
    after = replicas(launcher)
    assert after["b.1"]["restarts"] == 1
    assert after["server"]["pid"] == server_pid and after["server"]["restarts"] == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    new = psutil.Process(int(after["b.1"]["pid"]))  # type: ignore[call-overload]
    assert new.ppid() == template.pid and os.getsid(new.pid) == new.pid
    assert Path(log).read_text().count("--- asyncrpc launcher: starting b.1") == 2

    refs = [ProcessRef.of(template.pid), ProcessRef.of(server_template.pid)]
    down = launcher.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [ref for ref in refs if ref is None or ref.alive()], (
        "down returned before both templates had exited"
    )


#: Which of these a template has loaded after each stage of its preload, as JSON.
PRELOAD_STAGES = """
import json, sys
from asyncrpc.entrypoints import template
watched = ("rich", "resonate.resonate", "asyncrpc.dashboard.app", "asyncrpc.terminal.status_table",
           "asyncrpc.cli.status_commands", "asyncrpc.cli.node_commands")
def loaded():
    return [name for name in watched if sys.modules.get(name) is not None]
template.skip_unused_modules()
stages = {}
def early():
    replicas = {"server": ["server"], "node": ["node", "a"], "gateway": ["node", "gateway"]}
    return [kind for kind, args in replicas.items() if template.ready_early(args)]
template.preload(template.SHARED_PRELOAD, complete=False)
stages["shared"] = loaded()
template.preload(template.SERVER_PRELOAD, complete=False)  # the server template's
stages["server"] = loaded() + early()
template.preload(template.SUPERVISOR_PRELOAD, complete=False)
stages["supervisor"] = loaded()
template.preload(template.NODE_PRELOAD, complete=False)
stages["nodes' before the CLI"] = early()
template.preload(template.NODE_PRELOAD)
stages["nodes' and the CLI"] = early()
template.preload(template.GATEWAY_PRELOAD)
stages["replicas"] = loaded()
template.late_preload()
stages["late"] = loaded()
print(json.dumps(stages))
"""


def test_the_template_forks_the_supervisor_before_the_sdk_and_rich_only_once_idle() -> None:
    """What the supervisor is forked with, what the replicas are, and what relayed commands get.

    The server template is forked before the SDK, the supervisor with it (its dashboard
    needs it) but before the dashboard, which it imports itself while the template imports
    the replicas' modules; a node may be forked once its modules and the CLI are in, the
    gateway only at the end; nothing forked for a replica's start carries rich, which httpx's
    command line would load, nor the CLI's other commands; a relayed `status` finds them
    loaded once the template is idle.
    """
    done = subprocess.run(
        [sys.executable, "-c", PRELOAD_STAGES], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stages = json.loads(done.stdout)
    assert stages["shared"] == []
    assert stages["server"] == ["server"]
    assert stages["supervisor"] == ["resonate.resonate"]
    assert stages["nodes' before the CLI"] == ["server"]
    assert stages["nodes' and the CLI"] == ["server", "node"]
    # The replicas' CLI: their commands' modules alone, as `python -m asyncrpc node ...` loads.
    assert stages["replicas"] == ["resonate.resonate", "asyncrpc.cli.node_commands"]
    assert stages["late"] == [
        "rich",
        "resonate.resonate",
        "asyncrpc.terminal.status_table",
        "asyncrpc.cli.status_commands",
        "asyncrpc.cli.node_commands",
    ]
