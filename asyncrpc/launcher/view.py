"""How the launcher looks on a terminal: the status table and prefixed, coloured output lines.

Rendering only; the data comes from the supervisor's snapshot (a dict) and the
log files, so the same view serves the foreground `up`, `status` and `logs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from asyncrpc import topology
from asyncrpc.launcher.logtail import LogFollower

if TYPE_CHECKING:
    from asyncrpc.launcher.supervisor import Supervisor

_PALETTE = (
    "bright_magenta",
    "bright_cyan",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "bright_green",
    "bright_yellow",
    "bright_blue",
    "red",
)
_STATE_STYLES = {
    "running": "green",
    "starting": "yellow",
    "killed": "red",
    "exited": "red",
    "stopped": "dim",
}
LAUNCHER_PREFIX = "launcher"


def style_for(name: str) -> str:
    """A stable colour per process name (`b.1` and `b.2` differ)."""
    node, _, replica = name.partition(".")
    if node in topology.PROCESS_NAMES:
        index = topology.PROCESS_NAMES.index(node) + 3 * (int(replica or 1) - 1)
        return _PALETTE[index % len(_PALETTE)]
    return "bold"


def prefixed(name: str, line: str, width: int = 9) -> Text:
    """`b.1      | line` with the prefix in the process's colour; the line is not markup."""
    text = Text(f"{name:<{width}}| ", style=style_for(name))
    text.append(line)
    return text


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def status_table(snapshot: dict[str, Any]) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    for column in ("node", "group", "replica", "pid", "state", "uptime", "restarts", "id"):
        justify = "right" if column in ("replica", "pid", "uptime", "restarts") else "left"
        table.add_column(column, justify=justify, no_wrap=column == "id")
    for node in snapshot.get("nodes", []):
        state = node["state"]
        if state in ("exited", "killed") and node.get("exit_code") is not None:
            state = f"{state} ({node['exit_code']})"
        table.add_row(
            Text(node["name"], style=style_for(node["name"])),
            node.get("group") or "-",
            str(node["replica"]),
            str(node["pid"] or "-"),
            Text(state, style=_STATE_STYLES.get(node["state"], "")),
            format_uptime(node.get("uptime")),
            str(node["restarts"]),
            node.get("id") or "-",
        )
    return table


def print_status(console: Console, snapshot: dict[str, Any]) -> None:
    """The table plus where the server and gateway answer."""
    console.print(status_table(snapshot))
    kind = "embedded" if snapshot.get("server_embedded") else "external"
    console.print(f"server:  {snapshot.get('server_url')} ({kind})", highlight=False)
    gateway = snapshot.get("gateway_url")
    console.print(
        f"gateway: {gateway or 'not running (start it with `asyncrpc start gateway`)'}",
        highlight=False,
    )
    console.print(f"run dir: {snapshot.get('run_dir')}", highlight=False)


def print_lines(console: Console, lines: Iterable[tuple[str, str]]) -> None:
    for name, line in lines:
        console.print(prefixed(name, line), highlight=False, markup=False, soft_wrap=True)


def launcher_line(console: Console, message: str) -> None:
    print_lines(console, [(LAUNCHER_PREFIX, message)])


async def stream_output(supervisor: Supervisor, console: Console, interval: float = 0.1) -> None:
    """Print every child's new output lines with its prefix until cancelled (then flush)."""
    follower = LogFollower()
    rundir = supervisor.plan.rundir

    def files() -> list[tuple[str, Path]]:
        result = []
        for label, child in supervisor.children.items():
            path = rundir.log_for(label)
            if path not in follower.offsets:
                # Earlier runs' output in this run directory is history, not this run's.
                if child.log_start is not None:
                    follower.offsets[path] = child.log_start
                else:
                    follower.skip_existing([path])
            result.append((label, path))
        return result

    try:
        while True:
            print_lines(console, follower.poll(files()))
            await asyncio.sleep(interval)
    finally:
        print_lines(console, follower.poll(files(), final=True))


def try_next(snapshot: dict[str, Any], lead: str = "From another terminal try") -> str:
    """A hint naming commands that fit what runs, e.g. `asyncrpc call fan-out`."""
    running = {node["node"] for node in snapshot.get("nodes", []) if node["state"] == "running"}
    for flow in topology.FLOWS.values():
        if topology.GATEWAY in running and set(flow.nodes) <= running:
            return (
                f"{lead} [bold]asyncrpc call {flow.name}[/bold], "
                f"[bold]asyncrpc kill {flow.nodes[1]}[/bold], [bold]asyncrpc status[/bold]."
            )
    return f"{lead} [bold]asyncrpc status[/bold], [bold]asyncrpc logs[/bold]."
