"""The harness and the benchmarks' pieces that start processes work; speed is never asserted.

tests/unit/test_benchmarks_smoke.py checks the pieces that start none.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks import gateway_ab, history, soak, wrk
from benchmarks.bench import Bench, Sizes
from harness.postgres import ResonateCluster
from harness.processes import ProcessExited, session

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]


# ── harness ──────────────────────────────────────────────────────────────────


def test_processes_stop_what_they_started_even_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), session(tmp_path / "logs") as procs:
        outer = procs.start("outer", SLEEPER)
        with procs.scope():
            inner = procs.start("inner", SLEEPER)
            inner.wait_for_output("up")
        assert not inner.alive() and outer.alive()
        raise RuntimeError("boom")
    assert not outer.alive()
    assert outer.popen.returncode == -signal.SIGTERM


def test_waiting_for_output_fails_at_once_when_the_process_exits(tmp_path: Path) -> None:
    with session(tmp_path / "logs") as procs:
        quitter = procs.start("quitter", [sys.executable, "-c", "print('bye')"])
        with pytest.raises(ProcessExited, match=r"(?s)quitter exited \(0\).*bye"):
            quitter.wait_for_output("never printed", timeout=30)


def test_a_server_starts_answers_and_restarts_on_its_port(tmp_path: Path) -> None:
    with session(tmp_path / "logs") as procs:
        server = procs.spawn_server(tmp_path / "server.db")
        assert server.wait() > 0
        server.process.kill(signal.SIGKILL)
        process, url = procs.start_server(server.db, server.port)
        assert url == server.url and process.alive()


# ── benchmarks ───────────────────────────────────────────────────────────────


@pytest.mark.skipif(wrk.available() is None, reason="wrk is not installed")
def test_the_gateway_ab_loads_both_gateways_in_turn() -> None:
    """Both sides from this checkout: each gateway answered, was metered, and stopped."""
    checkout = Path(__file__).resolve().parents[2]
    result = gateway_ab.run(checkout, checkout, rounds=1, seconds=1, instructions=False)
    per_flow = result["cpu_ms_per_flow"]
    assert isinstance(per_flow, dict) and set(per_flow) == {"base", "new"}
    assert all(len(values) == 1 and values[0] > 0 for values in per_flow.values())
    assert isinstance(result["median_new_over_base"], float)


def test_soak_samples_memory_and_disk_while_retention_forgets(tmp_path: Path) -> None:
    sizes = Sizes.quick().with_(soak_seconds=6.0, soak_sample_s=2.0, soak_retain="2s")
    with session(tmp_path / "logs") as procs:
        bench = Bench(sizes, procs, tmp_path, Console(quiet=True))
        result = soak.run(bench)
    samples = result.data["samples"]
    assert len(samples) == 3 and result.data["failed"] == 0
    assert all(s["server_rss_bytes"] > 0 and s["db_bytes"] > 0 for s in samples)
    # An await chain is three promises; retention has forgotten the early ones.
    assert samples[-1]["promises"] < 3 * samples[-1]["flows"]


def test_history_seeds_stored_promises_and_measures_a_server_on_them(tmp_path: Path) -> None:
    """One size of the part, seeded: every step that starts a process, at a size that is quick.

    The part runs this for the fresh server (0 stored) too, where only the reads are skipped.
    """
    sizes = Sizes.quick().with_(history_promises=(600,), history_load=16, kill_rounds=1)
    with session(tmp_path / "logs") as procs:
        bench = Bench(sizes, procs, tmp_path, Console(quiet=True))
        row, db = history.one_size(bench, 600)
        row.update(history.interleaved(bench, {600: db})[600])
    assert row["stored"] == 600
    assert row["ready_s"] > 0 and row["restart_s"] > 0 and row["up_detach_s"] > 0
    assert row["idle_rss_bytes"] > 0 and row["invocations_per_s"] > 0
    assert row["get_s"] > 0 and row["call_graph_s"] > 0 and row["target_page_s"] > 0
    # The dashboard showed the kill of b and its start again: one time each, fed and painted.
    for change in (row["dashboard"]["kill"], row["dashboard"]["start"]):
        assert len(change["feed_s"]["all"]) == 1 and change["command_s"]["median"] > 0
        assert len(change["page_s"]["all"]) == (1 if row["dashboard"]["page"] else 0)


def test_the_pg_part_stores_history_and_forgets_it(resonate_cluster: ResonateCluster) -> None:
    import psycopg

    from benchmarks import pg_history

    dsn = resonate_cluster.database("pg_history")
    assert pg_history.seed(dsn, 300) == 300
    with psycopg.connect(dsn, autocommit=True) as conn:
        request = '{"kind": "promise.get", "head": {"corrId": "1"}, "data": {"id": "seed-7.1"}}'
        row = conn.execute("SELECT resonate.resonate_rpc(%s::jsonb)", (request,)).fetchone()
    assert row is not None
    (answer,) = row
    assert answer["head"]["status"] == 200
    assert answer["data"]["promise"]["state"] == "resolved"
    assert answer["data"]["promise"]["tags"]["resonate:origin"] == "seed-7"
    assert pg_history.forget_history(dsn) == 300
    assert pg_history.count_stored(dsn) == 0
