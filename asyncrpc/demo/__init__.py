"""`asyncrpc demo crash`: watch a durable flow survive a crash, narrated step by step.

The demo stages, with the commands' own pieces (:mod:`asyncrpc.ops.up`'s ``prepare`` /
``start_detached``, the control client's ``kill`` / ``start``,
:func:`asyncrpc.ops.down.stop_everything`, :class:`asyncrpc.ops.call.FlowCaller`), what a
person would do by hand with `asyncrpc up`, `call`, `kill`, `start` and `down`, and
explains each step as it happens. So it sits above ops and terminal (it prints with
the status table and the call graph tree), beside the dashboard, and below the CLI.

Modules, one job each: scenario (which flow, which node it kills, which step sleeps;
checked against the topology), observe (reading the call graph and task
states from the server), background (the call that waits while the demo
watches), narrate (everything printed), crash (the script that ties them
together).
"""
