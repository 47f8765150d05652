"""Shell completion of the installed `asyncrpc` script offers commands, flows and nodes.

tests/unit/test_cli_input.py checks the rest of the command line in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "asyncrpc"


def complete(*words: str) -> list[str]:
    """What bash completion offers after ``words`` (the last one being typed)."""
    env = {
        **os.environ,
        "_ASYNCRPC_COMPLETE": "complete_bash",
        "COMP_WORDS": " ".join(["asyncrpc", *words]),
        "COMP_CWORD": str(len(words)),
    }
    done = subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(not SCRIPT.exists(), reason="needs the installed asyncrpc script")
def test_shell_completion_offers_commands_flows_and_nodes() -> None:
    assert complete("inv") == ["invoke"]
    assert complete("invoke", "fan") == ["fan-out"]
    assert complete("kill", "ga") == ["gateway"]
    script = subprocess.run(
        [str(SCRIPT), "--show-completion", "bash"], capture_output=True, text=True, check=False
    )
    assert "_ASYNCRPC_COMPLETE=complete_bash" in script.stdout
