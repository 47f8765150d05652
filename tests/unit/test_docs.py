"""The README opens with the three commands a reader needs, and CI runs its test command.

tests/e2e/test_docs.py runs every command of README.md and docs/*.md.
"""

from __future__ import annotations

from tests.support import ROOT
from tests.support.documents import shell_lines


def test_readme_starts_with_the_setup_run_and_test_commands() -> None:
    first = shell_lines(ROOT / "README.md")[:3]
    assert [line.split("#")[0].strip() for line in first] == [
        "uv sync",
        "uv run asyncrpc up",
        "uv run pytest",
    ]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme_test = shell_lines(ROOT / "README.md")[2].split("#")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_test in [line.strip() for line in ci]
