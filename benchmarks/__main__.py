"""`uv run python -m benchmarks [--quick] [--only PART,...]`: see :mod:`benchmarks.cli`."""

from benchmarks.cli import app

app(prog_name="python -m benchmarks")
