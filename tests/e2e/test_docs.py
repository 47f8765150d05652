"""Every `shell` block of README.md and docs/*.md runs, as a reader would run it.

The rules that turn "a reader types these commands" into a test:

- ```shell blocks run in file order, in the repository root, line by line; ```text and
  ```mermaid blocks are output and diagrams, never run;
- each file gets a fresh run directory (ASYNCRPC_RUN_DIR) and free ports: ASYNCRPC_SERVER_PORT
  and ASYNCRPC_GATEWAY_PORT (and ASYNCRPC_DASHBOARD_PORT) are set, and the ports written in the
  text (8001, 5000 and 5050 in URLs, the values of --server-port, --gateway-port and
  --dashboard-port) are replaced by free ones;
- `uv sync` and `uv run pytest` are not run (setup is done; the second is this very test);
- `export NAME=VALUE` sets the environment of the lines after it;
- a line ending in `&` runs in the background; `wait` waits for those, each must exit 0;
- a line ending in `# exits N` must exit with N, every other line with 0;
- a foreground `asyncrpc up` (no --detach) runs as if in its own terminal: in the background
  until it is ready, and it gets Ctrl-C (SIGINT) before the next `up` or at the end of the file;
- at the end of a file, `asyncrpc down` stops what is left, and background processes are killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncrpc.runtime import config
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import Phase
from harness.isolation import free_port, isolated_env
from tests.support import ROOT
from tests.support.documents import shell_lines

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXPECTED_EXIT = re.compile(r"#\s*exits\s+(\d+)\s*$")
NOT_RUN = ("uv sync", "uv run pytest")
LINE_TIMEOUT = 240


def documents_with_commands() -> list[Path]:
    return [document for document in DOCUMENTS if shell_lines(document)]


class Reader:
    """Runs one document's commands with its own run directory and ports."""

    def __init__(self, tmp_path: Path) -> None:
        self.ports = {port: str(free_port()) for port in ("8001", "5000", "5050")}
        self.env = isolated_env(
            tmp_path / "run",
            ASYNCRPC_SERVER_PORT=self.ports["8001"],
            ASYNCRPC_GATEWAY_PORT=self.ports["5000"],
            ASYNCRPC_DASHBOARD_PORT=self.ports["5050"],
            NO_COLOR="1",
        )
        self.log = tmp_path / "commands.log"
        self.background: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.foreground_up: subprocess.Popen[bytes] | None = None

    def localize(self, line: str) -> str:
        """Free ports instead of the ones written in the text."""
        line = re.sub(
            r"127\.0\.0\.1:(8001|5000|5050)\b", lambda m: f"127.0.0.1:{self.ports[m[1]]}", line
        )
        for option in ("--server-port", "--gateway-port", "--dashboard-port"):
            line = re.sub(
                rf"{option}[ =](\d+)", lambda m, o=option: f"{o} {self._port(m[1])}", line
            )
        return line

    def _port(self, written: str) -> str:
        return self.ports.setdefault(written, str(free_port()))

    def run(self, line: str) -> None:
        if line.startswith(NOT_RUN) or line.startswith("#"):
            return
        line = self.localize(line)
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name.strip()] = value.strip()
            return
        if line == "wait":
            for command, process in self.background:
                assert process.wait(timeout=LINE_TIMEOUT) == 0, (
                    f"`{command}` failed:\n{self.tail()}"
                )
            self.background.clear()
            return
        expected = EXPECTED_EXIT.search(line)
        is_up = re.search(r"\basyncrpc up\b", line) is not None and expected is None
        if is_up:
            self.stop_foreground_up()
        if is_up and not re.search(r"(\s--detach\b|\s-d\b)", line):
            self.foreground_up = self.spawn(line)
            self.wait_until_ready(line)
            return
        if line.endswith("&"):
            self.background.append((line, self.spawn(line.removesuffix("&"))))
            return
        command = EXPECTED_EXIT.sub("", line)
        with self.log.open("ab") as out:
            out.write(f"\n$ {command}\n".encode())
            out.flush()
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=LINE_TIMEOUT,
            )
        want = int(expected[1]) if expected else 0
        assert result.returncode == want, (
            f"`{command}` exited {result.returncode}, not {want}:\n{self.tail()}"
        )

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            out.write(f"\n$ {command} (in the background)\n".encode())
            return subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_until_ready(self, command: str) -> None:
        """Until the launcher's state (what `asyncrpc status` reads) says ready."""
        rundir = RunDir(Path(self.env[config.ENV_RUN_DIR]))
        deadline = time.monotonic() + LINE_TIMEOUT
        while time.monotonic() < deadline:
            assert self.foreground_up is not None
            if self.foreground_up.poll() is not None:
                raise AssertionError(
                    f"`{command}` exited {self.foreground_up.returncode}:\n{self.tail()}"
                )
            state = rundir.read_state()
            if state is not None and state.snapshot.phase is Phase.READY:
                return
            time.sleep(0.1)
        raise AssertionError(f"`{command}` was not ready in {LINE_TIMEOUT}s:\n{self.tail()}")

    def stop_foreground_up(self) -> None:
        """The reader's Ctrl-C in the terminal that runs `asyncrpc up`."""
        if self.foreground_up is None:
            return
        if self.foreground_up.poll() is None:
            os.killpg(self.foreground_up.pid, signal.SIGINT)
        code = self.foreground_up.wait(timeout=60)
        self.foreground_up = None
        assert code in (0, 130), f"`asyncrpc up` ended with {code} after Ctrl-C:\n{self.tail()}"

    def finish(self) -> None:
        try:
            self.stop_foreground_up()
        finally:
            subprocess.run(
                [sys.executable, "-m", "asyncrpc", "down"],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                timeout=120,
            )
            for _, process in self.background:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.mark.parametrize("document", documents_with_commands(), ids=lambda p: p.name)
def test_document_commands_run(document: Path, tmp_path: Path) -> None:
    reader = Reader(tmp_path)
    try:
        for line in shell_lines(document):
            reader.run(line)
    finally:
        reader.finish()
