"""The launcher: run every asyncrpc process from one command and poke at them.

`asyncrpc up` starts the server, the gateway and the worker nodes as child
processes of one launcher (in the foreground, or detached), which keeps a
state file and serves a small control API in the run directory so `status`,
`call`, `kill`, `start`, `restart`, `logs` and `down` work from any terminal.

Modules, one job each: targets (names typed by a person), plan (what to run
and how), supervisor (the one owner of child processes), host (a running
launcher: supervisor + control API + state file), control (that API and its
client), up (preflight, foreground or detached start), daemon (the detached
launcher's entry point), calls (calling a flow through the gateway), ports,
pids (process identity), rundir (files), logtail and view (terminal output).

For scripts (e.g. `asyncrpc demo`): ``up.prepare(UpOptions(...), env, run_dir)``
then ``up.start_detached(plan, env)``; ``control.connect(RunDir(run_dir))`` gives
a client with ``status() / kill(name) / start(name) / restart(name) / down()``;
``calls.FlowCaller(gateway_url, server_url).call(flow, id, timeout)`` calls a
flow (reading the detached chain's result with ``ServerReader.search``).
"""
