"""The code base stays ruff clean: lint and format are part of the test command."""

import subprocess
import sys

from tests.support import ROOT


def run_ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_check_is_clean() -> None:
    result = run_ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run_ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
