"""What the commands do, as plain functions: start everything, stop it, call a flow.

Above supervise (each drives the supervisor or reads its run directory) and below
everything that offers them to a person: the CLI, the crash demo and the dashboard call
the same functions, so a button and a command behave alike. What lives above ops (the
dashboard a foreground `up` serves) is handed in by the caller.

- :mod:`.up`: check what `up` was given, decide the plan, run it here or detached.
- :mod:`.down`: stop everything `up` started, also when the supervisor itself died.
- :mod:`.call`: call a flow through the gateway and wait for its result.
- :mod:`.promises`: what the server knows: promises by pattern, one promise, a call graph.
"""
