"""The dashboard's demo runner runs its command as a child process and keeps its output.

A stand-in script takes the place of `asyncrpc demo crash`;
tests/unit/test_dashboard.py has the rest of the dashboard, without a process.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from asyncrpc.dashboard.demo_run import DemoCommand, DemoRun, DemoState
from asyncrpc.demo.scenario import choose
from asyncrpc.runtime.errors import CommandError


def demo_with(tmp_path: Path, script: str) -> DemoRun:
    path = tmp_path / f"fake_demo_{len(list(tmp_path.glob('fake_demo_*')))}.py"
    path.write_text(textwrap.dedent(script))
    command = DemoCommand((sys.executable, str(path)), tmp_path / "demo", lambda: 4242)
    return DemoRun(command, {})


async def until_done(demo: DemoRun) -> None:
    for _ in range(200):
        if not demo.running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the demo still runs: {demo.lines}")


def test_the_demo_runs_the_command_and_keeps_its_output(tmp_path: Path) -> None:
    demo = demo_with(
        tmp_path,
        """
        import sys
        print("argv:", " ".join(sys.argv[1:]))
        print("the flow recovered")
        """,
    )

    async def main() -> None:
        await demo.start(choose("await-chain", None, 3))
        await until_done(demo)

    asyncio.run(main())
    assert demo.state is DemoState.RECOVERED
    assert demo.lines[0] == (
        f"argv: demo crash --flow await-chain --victim b --delay 3 --run-dir {tmp_path / 'demo'} "
        "--server-port 4242 --gateway-port 4242"
    )
    assert demo.lines[1] == "the flow recovered"
    assert demo.to_json()["victim"] == "b"


def test_a_failed_demo_and_a_stopped_one(tmp_path: Path) -> None:
    failing = demo_with(tmp_path, "import sys\nprint('no luck')\nsys.exit(1)\n")
    waiting = demo_with(
        tmp_path,
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: (print("stopping all it started"), sys.exit(130)))
        print("started", flush=True)
        time.sleep(60)
        """,
    )

    async def main() -> None:
        await failing.start(choose("fan-out", None, 2))
        await until_done(failing)
        await waiting.start(choose("fan-out", None, 2))
        for _ in range(100):
            if waiting.lines:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(CommandError, match="already running"):
            await waiting.start(choose("fan-out", None, 2))
        await waiting.stop()

    asyncio.run(main())
    assert failing.state is DemoState.FAILED
    assert failing.exit_code == 1
    assert waiting.state is DemoState.STOPPED
    assert waiting.lines == ["started", "stopping all it started"]
