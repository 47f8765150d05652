"""A CLI run imports the module of its command only, and that module only what the command uses.

tests/unit/test_cli_lazy.py checks that each command is registered by the module named for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from asyncrpc.cli import COMMAND_MODULES

#: What `status`, `kill` and `call` must not import: the SDK, FastAPI, uvicorn, the other
#: commands, and the libraries a command answered at once never needs (psutil is loaded only
#: when the supervisor does not answer; httpx only for the detached chain's result; pydantic
#: only by a Typer that validates options with it, which is why Typer is pinned below 0.29).
HEAVY = (
    "resonate",
    "fastapi",
    "uvicorn",
    "httpx",
    "psutil",
    "pydantic",
    "asyncio",
    "asyncrpc.cli.demo_commands",
    "asyncrpc.cli.server_commands",
)


#: Runs the CLI as the `asyncrpc` script does, then prints every module it imported.
SHOW_MODULES = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
    "sys.argv = ['asyncrpc', *sys.argv[1:]]\n"
    "from asyncrpc.entrypoints.command import main\n"
    "main()\n"
)


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules `asyncrpc ARGS` imports (its own answer need not be a success)."""
    run = subprocess.run(
        [sys.executable, "-c", SHOW_MODULES, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ASYNCRPC_RUN_DIR": str(tmp_path / "run"), "PATH": "/usr/bin:/bin"},
    )
    return set(json.loads(run.stderr.splitlines()[-1]))


def test_status_kill_and_call_import_only_what_they_use(tmp_path: Path) -> None:
    nobody = "http://127.0.0.1:1"  # nothing listens: the call is made, and refused
    for args in (
        ["status"],
        ["kill", "b"],
        ["call", "await-chain"],
        ["call", "await-chain", "--gateway-url", nobody],
    ):
        modules = imported_by(tmp_path, *args)
        assert f"asyncrpc.cli.{COMMAND_MODULES[args[0]]}" in modules, args
        assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}, args
