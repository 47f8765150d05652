"""`uv run python -m benchmarks`: the command line; :mod:`benchmarks.runner` does the work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchmarks.bench import Sizes
from benchmarks.runner import DEFAULT_JSON, PART_NAMES, PARTS, Options, run

app = typer.Typer(add_completion=False, rich_markup_mode=None)

PARTS_HELP = "; ".join(f"{p.name}: {p.summary}" for p in PARTS)


def name_list(value: str | None, what: str) -> tuple[str, ...] | None:
    """``a,b`` -> ("a", "b"), each checked against the part names."""
    names = None if value is None else tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names or () if n not in PART_NAMES]
    if names is not None and (unknown or not names):
        raise typer.BadParameter(
            f"unknown part(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(PART_NAMES)}",
            param_hint=what,
        )
    return names


#: The resonate-pg part's systems (benchmarks.pg_history's contenders).
PG_SYSTEMS = ("fresh", "30k", "b2", "plain", "embedded")


def pg_system_list(value: str | None) -> tuple[str, ...] | None:
    """``fresh,plain`` -> ("fresh", "plain"), each one of :data:`PG_SYSTEMS`."""
    names = None if value is None else tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names or () if n not in PG_SYSTEMS]
    if names is not None and (unknown or not names):
        raise typer.BadParameter(
            f"unknown system(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(PG_SYSTEMS)}",
            param_hint="--pg-systems",
        )
    return names


def int_list(value: str | None, what: str) -> tuple[int, ...] | None:
    """``1,16,64`` -> (1, 16, 64), each a positive integer."""
    try:
        numbers = None if value is None else tuple(int(n) for n in value.split(",") if n.strip())
    except ValueError:
        numbers = ()
    if numbers is not None and (not numbers or min(numbers) < 1):
        raise typer.BadParameter(
            f"expected comma-separated integers >= 1, e.g. 1,16,64; got {value!r}",
            param_hint=what,
        )
    return numbers


@app.command(help=f"Run the asyncrpc benchmarks. Parts: {PARTS_HELP}.")
def main(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes: a smoke run of every part.")
    ] = False,
    only: Annotated[
        str | None, typer.Option(help="Run only these parts, e.g. roundtrip,throughput.")
    ] = None,
    skip: Annotated[str | None, typer.Option(help="Run every part except these.")] = None,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results.")
    ] = DEFAULT_JSON,
    callers: Annotated[
        str | None, typer.Option(help="Concurrency levels, e.g. 1,16,64 (default).")
    ] = None,
    roundtrip: Annotated[
        int | None, typer.Option(min=1, help="Sequential invocations per flow (default 200).")
    ] = None,
    invocations: Annotated[
        int | None,
        typer.Option(min=1, help="Invocations per concurrency level, at least (default 400)."),
    ] = None,
    server_pairs: Annotated[
        int | None, typer.Option(min=1, help="Server alone: create+settle pairs (default 2000).")
    ] = None,
    server_promises: Annotated[
        str | None,
        typer.Option(help="Server alone: restart with these many stored promises (10000,100000)."),
    ] = None,
    recovery_rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds of each recovery scenario (default 3).")
    ] = None,
    startup_rounds: Annotated[
        int | None, typer.Option(min=1, help="Start-up measurements (default 2).")
    ] = None,
    startup_base: Annotated[
        str | None,
        typer.Option(help="Start-up: time `up --detach` of this git revision against this code."),
    ] = None,
    startup_ab_rounds: Annotated[
        int | None,
        typer.Option(min=1, help="Start-up: pairs of rounds against --startup-base (default 6)."),
    ] = None,
    soak_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="Soak: seconds of flows (default 360; --quick 12)."),
    ] = None,
    history_promises: Annotated[
        str | None,
        typer.Option(help="History: settled promises stored (default 100000,1000000)."),
    ] = None,
    history_load: Annotated[
        int | None, typer.Option(min=1, help="History: await chains of its load (default 300).")
    ] = None,
    kill_rounds: Annotated[
        int | None,
        typer.Option(min=1, help="History: kills and starts of b timed on the dashboard (5)."),
    ] = None,
    up_rounds: Annotated[
        int | None,
        typer.Option(min=1, help="History: up --detach rounds per size, interleaved (3)."),
    ] = None,
    pg_rounds: Annotated[
        int | None,
        typer.Option(min=1, help="resonate-pg: interleaved rounds of every system (default 3)."),
    ] = None,
    pg_systems: Annotated[
        str | None,
        typer.Option(
            help="resonate-pg: only these systems, e.g. fresh,plain "
            "(of fresh, 30k, b2, plain, embedded; default all)."
        ),
    ] = None,
    soak_retain: Annotated[
        str | None, typer.Option(help="Soak: the server's --retain (default 20s).")
    ] = None,
    keep_logs: Annotated[
        bool, typer.Option("--keep-logs", help="Keep the processes' logs (kept anyway on failure).")
    ] = False,
) -> None:
    if only is not None and skip is not None:
        raise typer.BadParameter("use --only or --skip, not both", param_hint="--only/--skip")
    parts = name_list(only, "--only") or PART_NAMES
    skipped = name_list(skip, "--skip") or ()
    sizes = (Sizes.quick() if quick else Sizes()).with_(
        callers=int_list(callers, "--callers"),
        roundtrip=roundtrip,
        throughput=invocations,
        server_pairs=server_pairs,
        server_promises=int_list(server_promises, "--server-promises"),
        recovery_rounds=recovery_rounds,
        startup_rounds=startup_rounds,
        startup_base=startup_base,
        startup_ab_rounds=startup_ab_rounds,
        soak_seconds=soak_seconds,
        soak_retain=soak_retain,
        history_promises=int_list(history_promises, "--history-promises"),
        history_load=history_load,
        kill_rounds=kill_rounds,
        up_rounds=up_rounds,
        pg_rounds=pg_rounds,
        pg_systems=pg_system_list(pg_systems),
    )
    chosen = tuple(p for p in parts if p not in skipped)
    if not chosen:
        raise typer.BadParameter("that leaves no part to run", param_hint="--skip")
    options = Options(
        sizes=sizes,
        parts=chosen,
        json_path=json_path,
        keep_logs=keep_logs,
        quick=quick,
    )
    # A fixed width when piped, so tables do not wrap at 80 columns in a log.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    raise typer.Exit(run(options, console))
