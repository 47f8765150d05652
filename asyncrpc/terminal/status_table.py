"""How the supervisor looks on a terminal: the status table and prefixed, coloured output lines.

Rendering only; the data comes from the supervisor's
:class:`~asyncrpc.supervise.status.LauncherSnapshot` and the log files, so the
same view serves the foreground `up`, `status` and `logs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from asyncrpc.supervise.status import LauncherSnapshot, ReplicaState

if TYPE_CHECKING:
    from rich.console import JustifyMethod

    from asyncrpc.ops.health import Reach, SystemHealth
    from asyncrpc.supervise.supervisor import Supervisor

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
    ReplicaState.RUNNING: "green",
    ReplicaState.STARTING: "yellow",
    ReplicaState.KILLED: "red",
    ReplicaState.EXITED: "red",
    ReplicaState.STOPPED: "dim",
}
LAUNCHER_PREFIX = "launcher"


def style_for(name: str) -> str:
    """A stable colour per replica name (`b.1` and `b.2` differ)."""
    node, _, replica = name.partition(".")
    if node in topology.PROCESS_NAMES:
        index = topology.PROCESS_NAMES.index(node) + 3 * (int(replica or 1) - 1)
        return _PALETTE[index % len(_PALETTE)]
    return "bold"


def prefixed(name: str, line: str, width: int = 9) -> Text:
    """`b.1      | line` with the prefix in the replica's colour; the line is not markup."""
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


def status_table(snapshot: LauncherSnapshot) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    for column in ("node", "group", "replica", "pid", "state", "uptime", "restarts", "id"):
        justify: JustifyMethod = (
            "right" if column in ("replica", "pid", "uptime", "restarts") else "left"
        )
        table.add_column(column, justify=justify, no_wrap=column == "id")
    for replica in snapshot.replicas:
        state = str(replica.state)
        if replica.state.ended and replica.exit_code is not None:
            state = f"{state} ({replica.exit_code})"
        table.add_row(
            Text(replica.name, style=style_for(replica.name)),
            Text(replica.group or "-"),
            str(replica.replica),
            str(replica.pid or "-"),
            Text(state, style=_STATE_STYLES.get(replica.state, "")),
            format_uptime(replica.uptime),
            str(replica.restarts),
            Text(replica.id or "-"),
        )
    return table


def print_status(
    console: Console, snapshot: LauncherSnapshot, health: SystemHealth | None = None
) -> None:
    """The table plus where the server and gateway answer (and, given ``health``, whether)."""
    console.print(status_table(snapshot))
    kind = "embedded" if snapshot.server_embedded else "external"
    if config.is_postgres_url(snapshot.server_url):
        kind = "resonate-pg, node postgres" if snapshot.server_embedded else "resonate-pg"
    server = config.redacted(snapshot.server_url)
    console.print(
        f"server:  {escape(server)} ({kind}){_reach(health.server if health else None)}",
        highlight=False,
    )
    gateway = snapshot.gateway_url
    where = gateway or "not running (start it with `asyncrpc start gateway`)"
    console.print(
        f"gateway: {escape(where)}{_reach(health.gateway if health and gateway else None)}",
        highlight=False,
    )
    if snapshot.dashboard_url:
        console.print(f"dashboard: {snapshot.dashboard_url}", highlight=False)
    console.print(f"run dir: {escape(snapshot.run_dir)}", highlight=False)


def _reach(reach: Reach | None) -> str:
    """`` - healthy`` in green, or `` - UNREACHABLE ...`` in red (nothing without a probe)."""
    if reach is None:
        return ""
    color = "green" if reach.ok else "red"
    return f" [{color}]- {escape(reach.detail)}[/{color}]"


def print_lines(console: Console, lines: Iterable[tuple[str, str]]) -> None:
    for name, line in lines:
        console.print(prefixed(name, line), highlight=False, markup=False, soft_wrap=True)


def launcher_line(console: Console, message: str) -> None:
    print_lines(console, [(LAUNCHER_PREFIX, message)])


async def stream_output(supervisor: Supervisor, console: Console, interval: float = 0.1) -> None:
    """Print every replica's new output lines with its prefix until cancelled (then flush)."""
    # Imported here: only the foreground `up` follows output; `status` renders without them.
    import asyncio

    from asyncrpc.supervise.log_files import LogFollower

    follower = LogFollower()
    rundir = supervisor.plan.rundir

    def files() -> list[tuple[str, Path]]:
        result = []
        for name, replica in supervisor.replicas.items():
            path = rundir.log_for(name)
            if path not in follower.offsets:
                # Earlier runs' output in this run directory is history, not this run's.
                if replica.log_start is not None:
                    follower.offsets[path] = replica.log_start
                else:
                    follower.skip_existing([path])
            result.append((name, path))
        return result

    try:
        while True:
            print_lines(console, follower.poll(files()))
            await asyncio.sleep(interval)
    finally:
        print_lines(console, follower.poll(files(), final=True))


def try_next(snapshot: LauncherSnapshot, lead: str = "From another terminal try") -> str:
    """A hint naming commands that fit what runs, e.g. `asyncrpc invoke fan-out`."""
    running = snapshot.running_nodes()
    for flow in topology.FLOWS.values():
        if topology.GATEWAY in running and set(flow.nodes) <= running:
            return (
                f"{lead} [bold]asyncrpc invoke {flow.name}[/bold], "
                f"[bold]asyncrpc kill {flow.nodes[1]}[/bold], [bold]asyncrpc status[/bold]."
            )
    return f"{lead} [bold]asyncrpc status[/bold], [bold]asyncrpc logs[/bold]."
