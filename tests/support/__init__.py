"""Helpers that only the tests use; what tests and benchmarks share lives in harness/.

Fixtures that unit and end-to-end tests share are in tests/conftest.py, those of
the end-to-end tests alone in tests/e2e/conftest.py.
"""

from pathlib import Path

#: The repository's root, for tests that read its files (README.md, docs/, .ci/run).
ROOT = Path(__file__).resolve().parents[2]
