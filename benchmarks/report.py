"""What a part hands back, and how results leave the run: rich tables and one JSON file.

A part returns a :class:`PartResult`: JSON-ready ``data`` (what the file
keeps), :class:`Table` s for the terminal (cells already formatted), and
``notes`` saying what exactly was measured. Tables and JSON come from the
same run, so the numbers in both always agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from benchmarks.measure import LoadResult


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])


@dataclass
class PartResult:
    """One part's outcome."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"seconds": round(self.seconds, 1), **self.data}
        if self.notes:
            body["notes"] = self.notes
        if self.error:
            body["error"] = self.error
        return body


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def secs(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def rate(value: float) -> str:
    return f"{value:,.1f}"


def mib(value: int) -> str:
    return f"{value / 2**20:,.1f}"


# ── Concurrency levels (throughput, baseline, direct client, floor) ─────────

ROLE_ABBREVIATIONS = {"server": "srv", "gateway": "gw", "nodes": "nodes", "driver": "drv"}


def level_table(title: str) -> Table:
    return Table(
        title,
        [
            "callers",
            "invocations",
            "inv/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "CPU ms per invocation",
            "cores used",
        ],
    )


def add_level(table: Table, level: LoadResult) -> None:
    cpu = " ".join(
        f"{ROLE_ABBREVIATIONS.get(role, role)} {value:.1f}"
        for role, value in level.cpu_ms_per_invocation().items()
    )
    table.add(
        level.callers,
        level.invocations,
        rate(level.per_second),
        ms(level.latency.p50_ms),
        ms(level.latency.p99_ms),
        level.errors,
        cpu,
        "-" if level.cores_used is None else f"{level.cores_used:.2f}",
    )


CPU_NOTE = (
    "CPU ms per invocation: user+system CPU (from /proc) during the level over completed "
    "invocations; srv = server, gw = gateway, nodes = the worker nodes, drv = this benchmark "
    "process (the load generator, or the SDK client itself); the product's CPU (in the JSON) "
    "leaves the load generator out. cores used: all that CPU over the level's wall time (at "
    "most 2 here, 1 for the one-process floor); well under that, the machine's other work "
    "or waiting held the run back"
)


#: The roles whose CPU is the product's when the load comes through an HTTP gateway (the
#: benchmark process is then only the callers); with an SDK client or in one process, the
#: benchmark process does the product's work too.
HTTP_PRODUCT = ("server", "gateway", "nodes")


def levels_json(levels: list[LoadResult], product: tuple[str, ...]) -> dict[str, Any]:
    """Each level's numbers, plus the CPU ms per invocation of the ``product`` roles summed."""
    body = {}
    for level in levels:
        body[str(level.callers)] = level.to_json()
        per = level.cpu_ms_per_invocation()
        if per:
            total = sum(per.get(role, 0.0) for role in product)
            body[str(level.callers)]["product_cpu_ms_per_invocation"] = round(total, 2)
    return body


def error_notes(levels: list[LoadResult]) -> list[str]:
    return [
        f"{level.callers} callers: {level.errors} error(s), first: {level.first_error}"
        for level in levels
        if level.errors
    ]


def render(console: Console, result: PartResult) -> None:
    """Print one part's tables, its notes and its error (if any)."""
    for table in result.tables:
        rich_table = RichTable(title=table.title, title_justify="left")
        for i, column in enumerate(table.columns):
            rich_table.add_column(column, justify="left" if i == 0 else "right")
        for row in table.rows:
            rich_table.add_row(*row)
        console.print(rich_table)
    for note in result.notes:
        console.print(f"  [dim]{note}[/dim]", highlight=False)
    if result.error:
        console.print(f"[red]{result.name} failed:[/red] {result.error}", highlight=False)
    console.print()


def write_json(
    path: Path, meta: dict[str, Any], results: list[PartResult], ratios: PartResult
) -> None:
    """Write ``meta``, every part's data under ``parts`` and the ratios to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "meta": meta,
        "ratios": {**ratios.data, "notes": ratios.notes},
        "parts": {r.name: r.to_json() for r in results},
    }
    path.write_text(json.dumps(body, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
