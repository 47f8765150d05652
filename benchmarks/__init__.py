"""Benchmarks of issue 6: how fast the product is, and what it costs; speed numbers live here.

Run everything with ``uv run python -m benchmarks`` (``--quick`` for a smoke
run, ``--only roundtrip,throughput`` for some parts); it prints rich tables
and writes ``benchmarks/results/latest.json``. One module per part
(:mod:`~benchmarks.roundtrip`, :mod:`~benchmarks.throughput`,
:mod:`~benchmarks.floor`, :mod:`~benchmarks.baseline`,
:mod:`~benchmarks.direct`, :mod:`~benchmarks.server`,
:mod:`~benchmarks.recovery`, :mod:`~benchmarks.startup`); shared helpers in
:mod:`~benchmarks.processes` (starting and stopping processes),
:mod:`~benchmarks.measure` (the load driver, percentiles, CPU per process),
:mod:`~benchmarks.load_client` (the HTTP client of the loads) and
:mod:`~benchmarks.report` (tables, JSON); :mod:`~benchmarks.runner` puts
them together, :mod:`~benchmarks.ratios` compares them. Two programs run as
their own processes: :mod:`~benchmarks.baseline_gateway` (the Flask-style
gateway) and :mod:`~benchmarks.stuck_worker` (a worker that holds its task).
:mod:`~benchmarks.cpu_profile` shows where the CPU goes under load (with
py-spy when installed). Speed targets are never asserted in tests.
"""
