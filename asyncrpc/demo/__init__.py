"""`asyncrpc demo crash`: watch a durable flow survive a crash, narrated step by step.

The demo stages, with the launcher's own pieces (``up.prepare`` /
``up.start_detached``, the control client's ``kill`` / ``start`` / ``down``,
``calls.FlowCaller``), what a person would do by hand with `asyncrpc up`,
`call`, `kill` and `start`, and explains each step as it happens.

Modules, one job each: scenario (which flow, which node it kills, which step sleeps;
checked against the topology), observe (reading the call graph and task
states from the server), background (the call that waits while the demo
watches), narrate (everything printed), crash (the script that ties them
together).
"""
