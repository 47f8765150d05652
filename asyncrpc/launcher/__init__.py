"""The launcher: run every asyncrpc process from one command and poke at them.

`asyncrpc up` runs the supervisor (in the foreground, or detached), which
starts the server, the gateway and the worker nodes' replicas, keeps a state
file and serves its control server in the run directory, so `status`, `call`,
`kill`, `start`, `restart`, `logs` and `down` work from any terminal.

Modules, one job each:

- targets: names a person types (flows, nodes, `b.2`), checked against the topology.
- numbers: numbers a person types, read strictly (digits 0-9, finite, bounded).
- plan: which replicas to run and how (command lines, readiness).
- supervisor: the one owner of the replicas' processes.
- supervisor_process: the supervisor, its control server and the state file, until stopped.
- detached_supervisor: the entry point of a detached `up`.
- control_server / control_client: the supervisor's HTTP API and how commands reach it.
- status: the typed snapshot (replica states, the supervisor's phase) and its JSON.
- up: preflight, then a foreground or detached start.
- down: stop everything, also when the supervisor itself died.
- calls: call a flow through the gateway.
- logtail and view: log files and terminal output.
- ports, pids, rundir, errors: free ports, process identity, files, messages.

For scripts (e.g. `asyncrpc demo`): ``up.prepare(UpOptions(...), env, run_dir)``
then ``up.start_detached(plan, env)``; ``control_client.connect(RunDir(run_dir))``
gives a client with ``status() / kill(node) / start(node) / restart(node)``;
``down.stop_everything(RunDir(run_dir))`` stops it all;
``calls.FlowCaller(gateway_url, server_url).call(flow, id, timeout)`` calls a
flow (reading the detached chain's result with ``ServerReader.search``).
"""
