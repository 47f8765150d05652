"""The dashboard's feed over a run directory with settled promises stored.

The run's ``server.db`` is seeded before `asyncrpc up` with settled await
chains (harness/history.py, the history benchmark's bulk path, at a small
size), so the server serves the page's shared poll from stored history. The
feed is read as the page reads it (``/api/events``); how soon it shows a
change is measured by the history benchmark (benchmarks/kill_live.py), not
here.
"""

from __future__ import annotations

import time

from asyncrpc.server.main import default_db_path
from harness.dashboard_feed import Feed, sign_in
from harness.history import seed
from tests.support.launcher import Launcher

#: Settled promises stored before `up`: await chains of three.
STORED = 5_000
#: Seconds the feed may take to show a change on a busy shared machine.
SLOW = 60.0


def test_the_feed_shows_kill_and_start_with_history_stored(launcher: Launcher) -> None:
    run_dir = launcher.rundir.path
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    seed(default_db_path(run_dir), STORED, "old")
    up = launcher.up()
    assert up.returncode == 0, up.stdout + up.stderr
    with Feed(sign_in(launcher.env)) as feed:
        # The stored history is what the page lists: the newest seeded chain first.
        newest = f"old-{(STORED - 1) // 3:08d}"
        listed = feed.wait_for(
            "invocations",
            lambda event: bool(event.data["invocations"]),
            0.0,
            SLOW,
            "the stored invocations",
        )
        assert listed.data["error"] is None
        assert listed.data["invocations"][0]["id"] == newest
        assert listed.data["invocations"][0]["state"] == "resolved"
        feed.first("b.1", "running", 0.0, SLOW)

        killed_from = time.monotonic()
        kill = launcher.run("kill", "b")
        assert kill.returncode == 0, kill.stderr
        feed.first("b.1", "killed", killed_from, SLOW)

        started_from = time.monotonic()
        start = launcher.run("start", "b")
        assert start.returncode == 0, start.stderr
        back = feed.first("b.1", "running", started_from, SLOW)
        assert {node["name"]: node["restarts"] for node in back.data["nodes"]}["b.1"] == 1
