"""The supervisor: one owner of every replica's process, its run directory and its control channel.

Above the processes it runs (server, Postgres, gateway, nodes: it starts them as
`asyncrpc ...` command lines, it never imports them to run them) and below the
commands that drive it (ops, the CLI), the dashboard it hosts and the entry points
that start it: what sits above is handed in, as the dashboard is
(:class:`~.supervisor_process.DashboardOpener`).

- :mod:`.targets`: the flows, nodes and ``NAME=VALUE`` options a person types, checked.
- :mod:`.plan`: what one `up` runs: the replicas, their ports and options, their command lines.
- :mod:`.supervisor`: the one owner of the replicas' processes: spawn, ready, watch, respawn, stop.
- :mod:`.supervisor_process`: the supervisor, its control server and the state file, until stopped.
- :mod:`.template_client`: the supervisor's side of the fork template.
- :mod:`.control_server`, :mod:`.control_client`: its HTTP API, and how commands reach it.
- :mod:`.status`: what the supervisor reports about itself and its replicas, as typed records.
- :mod:`.rundir`: the run directory: state file, plan, logs, database.
- :mod:`.log_files`: the replicas' log files, read and followed.
- :mod:`.pids`: process identity (pid plus create time), so a recycled pid is never signalled.
- :mod:`.ports`: is a TCP port free, and if not, who holds it.
"""
