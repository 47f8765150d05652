"""Process entry points: the modules a process is started as (`python -m ...`).

The top layer: each composes the layers below into one process, so each may import
anything, the CLI and the dashboard included. Nothing imports them; the supervisor
and `up` name them as command lines.

- :mod:`.template`: the fork template: imports what replicas run once, then forks them on request.
- :mod:`.detached_supervisor`: a detached `up`'s supervisor process, dashboard included.
"""
