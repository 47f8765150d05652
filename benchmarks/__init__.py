"""How fast the product is, and what it costs; speed numbers live here, never in tests.

Run everything with ``uv run python -m benchmarks`` (``--quick`` for a smoke
run, ``--only roundtrip,throughput`` for some parts); it prints rich tables
and writes ``benchmarks/results/latest.json``. A module per part:
:mod:`~benchmarks.roundtrip`, :mod:`~benchmarks.loads` (the await chain
through our gateway, the Flask baseline, an SDK client, and in one process),
:mod:`~benchmarks.compare` (ours, the original topology, an SDK client and the
floor interleaved: the ratios and the sequential latency),
:mod:`~benchmarks.hops` (one sequential await chain traced hop by hop, through
:mod:`~benchmarks.traced`),
:mod:`~benchmarks.recovery`, :mod:`~benchmarks.startup` and
:mod:`~benchmarks.server`. Shared by the parts: :mod:`~benchmarks.bench`
(sizes, the shared topology), :mod:`~benchmarks.measure` (the load driver,
percentiles, CPU and memory), :mod:`~benchmarks.wrk` (the HTTP load
generator, wrk, where installed), :mod:`~benchmarks.load_client` (the
loads' HTTP client without it) and :mod:`~benchmarks.report` (tables, JSON);
:mod:`~benchmarks.runner` puts them together. Processes are started and
stopped by :mod:`harness`, as in the tests. Programs that run as their own
processes: :mod:`~benchmarks.baseline_gateway` (the Flask-style gateway),
:mod:`~benchmarks.original_node` (a service of the original example),
:mod:`~benchmarks.traced` (a traced server, gateway or node) and
:mod:`~benchmarks.stuck_worker` (a worker that holds its task).
:mod:`~benchmarks.cpu_profile` shows where the CPU goes under load.
"""
