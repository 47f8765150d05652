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


def write_json(path: Path, meta: dict[str, Any], results: list[PartResult]) -> None:
    """Write ``meta`` and every part's data under ``parts`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"meta": meta, "parts": {r.name: r.to_json() for r in results}}
    path.write_text(json.dumps(body, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
