"""The run directory: where the supervisor keeps its state file, its plan, logs and database.

One supervisor per run directory (``config.run_dir(env)``, `.asyncrpc/` under the
current directory unless ASYNCRPC_RUN_DIR says otherwise): `up` takes an exclusive
lock on ``supervisor.lock`` (:meth:`RunDir.claim`) before it checks anything or
writes the plan, and the supervisor holds it for its life (a detached one is
handed the very lock, an inherited file descriptor, so there is no moment
when it is free), so of two `up` s at once exactly one runs and the other says
which pid does. The kernel drops the lock when its holder dies. Layout:

- ``launcher.json``: written by the running supervisor on every change
  (:class:`~asyncrpc.supervise.status.RunState`): its own pid, the control
  server's address and token, the phase (starting / ready / failed / stopping)
  and every replica it started with pid and start time. Removed on a clean
  stop. Other commands read it to find the supervisor.
- ``plan.json``: what a detached supervisor was asked to run.
- ``dashboard.html``: written by `asyncrpc ui` for the browser it opens: a page
  that goes on to the dashboard's sign-in address, so the secret in that
  address is on no command line (a browser's is readable by every local user).
- ``supervisor.lock``: the lock, and the pid of the process holding it.
- ``logs/<name>.log``: each replica's output (``server``, ``gateway``, ``b.1``...),
  appended across restarts; ``logs/launcher.log`` is a detached supervisor's own.
- ``server.db``: the embedded server's database, kept between runs.
- ``postgres/``: the `postgres` node's data directory (`up --server postgres`), kept too.

The directory holds secrets and every replica's output, so only this user may
enter it (0700) or read its files (0600), whatever the umask says.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.status import RunState

LAUNCHER_LOG = "launcher"
#: Modes of the run directory (and its logs/) and of every file the launcher writes there.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: How long a refused `up` waits for the lock's holder to write its pid: the holder writes it
#: right after it takes the lock, and an `up` started at the same moment may look in between.
HOLDER_WAIT_S = 0.5
#: The run directory when root runs the ``postgres`` node: others may pass, not list.
PASSABLE_DIR = 0o711


def _make_private(path: Path, mode: int) -> None:
    """Set ``path`` to ``mode`` if this user owns it and others may do more (an older run's)."""
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077 & ~mode:
        path.chmod(mode)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by this user only."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class RunDirBusy(CommandError):
    """Another `asyncrpc up` holds the run directory."""


def read_holder(
    fd: int, wait_s: float = HOLDER_WAIT_S, sleep: Callable[[float], None] = time.sleep
) -> str:
    """The pid in the lock file ``fd``, waiting up to ``wait_s`` for a holder to write it."""
    deadline = time.monotonic() + wait_s
    while True:
        first_line = os.pread(fd, 32, 0).decode(errors="replace").split("\n", 1)[0].strip()
        if first_line.isdigit() or time.monotonic() >= deadline:
            return first_line or "unknown"
        sleep(0.01)


@dataclass
class RunDirLock:
    """The run directory's lock: an exclusive ``flock`` held through ``fd``."""

    fd: int
    path: Path

    def note_holder(self, pid: int) -> None:
        """Write ``pid`` into the lock file, so that a refused `up` can name it.

        Written over the old content, then cut to length: a reader never finds the file
        empty between the two (it finds the old pid or the new one, or a longer old one's
        tail after the new one, which :func:`read_holder` drops).
        """
        data = f"{pid}\n".encode()
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))

    def release(self) -> None:
        """Close this process's hold (a child handed the same lock keeps it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory, and the state file's reader and writer."""

    path: Path

    @property
    def state_file(self) -> Path:
        return self.path / "launcher.json"

    @property
    def plan_file(self) -> Path:
        return self.path / "plan.json"

    @property
    def sign_in_page(self) -> Path:
        return self.path / "dashboard.html"

    @property
    def lock_file(self) -> Path:
        return self.path / "supervisor.lock"

    def claim(self) -> RunDirLock:
        """Take the run directory's lock, or :class:`RunDirBusy` naming the pid holding it."""
        self.path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        _make_private(self.path, self.run_dir_mode)
        fd = os.open(self.lock_file, os.O_CREAT | os.O_RDWR, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = read_holder(fd)
            os.close(fd)
            raise RunDirBusy(
                f"another `asyncrpc up` (pid {holder}) is starting or running in {self.path}: "
                "one runs per run directory. See it with `asyncrpc status`, stop it with "
                "`asyncrpc down`, or give this one another --run-dir."
            ) from None
        lock = RunDirLock(fd, self.lock_file)
        lock.note_holder(os.getpid())
        return lock

    def adopt(self, fd: int) -> RunDirLock:
        """The lock `up --detach` took and handed down as file descriptor ``fd``.

        Checked to be this run directory's lock and held (flock on a descriptor
        that holds it already succeeds); anything else is :class:`RunDirBusy` or a
        CommandError, never a supervisor running without the lock.
        """
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.lock_file))
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            raise CommandError(f"the run directory's lock was not handed over: {error}") from None
        if not same:
            raise CommandError(f"file descriptor {fd} is not {self.lock_file}")
        lock = RunDirLock(fd, self.lock_file)
        lock.note_holder(os.getpid())
        return lock

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def db(self) -> Path:
        return self.path / "server.db"

    @property
    def postgres_data(self) -> Path:
        return self.path / "postgres"

    def log_for(self, name: str) -> Path:
        """The log of the replica ``name`` (`b.1`), or of the detached supervisor."""
        return self.logs / f"{name}.log"

    def ensure(self) -> None:
        """Create the run directory and logs/, private to this user.

        One exception: started by root, the ``postgres`` node runs Postgres as the
        wheel's own system user (Postgres refuses root), which must pass through the
        run directory to reach its data; it may pass (0711), not list or read.
        """
        for directory in (self.path, self.logs):
            directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        _make_private(self.path, self.run_dir_mode)
        _make_private(self.logs, PRIVATE_DIR)

    @property
    def run_dir_mode(self) -> int:
        if os.geteuid() == 0 and self.postgres_data.exists():
            return PASSABLE_DIR
        return PRIVATE_DIR

    def open_log(self, name: str) -> BinaryIO:
        """The log of ``name`` opened for appending (at its end), private to this user."""
        self.ensure()
        fd = os.open(self.log_for(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, "ab")

    def write_plan(self, text: str) -> None:
        self.ensure()
        write_private(self.plan_file, text)

    def read_state(self) -> RunState | None:
        """The supervisor's state, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return RunState.from_json(data)

    def write_state(self, state: RunState) -> None:
        """Replace the state file atomically; only this user may read it (it holds a token)."""
        self.ensure()
        write_private(self.state_file, json.dumps(state.to_json(), indent=1))

    def clear_state(self) -> None:
        """Remove the state file (and the sign-in page, whose secret ends with the run)."""
        for path in (self.state_file, self.sign_in_page):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def write_sign_in_page(self, url: str) -> Path:
        """Write the page that sends a browser on to ``url`` (private to this user); its path.

        `asyncrpc ui` opens this file rather than ``url``: a browser is started
        with its address on its command line, which any local user can read.
        """
        self.ensure()
        target = json.dumps(url).replace("</", "<\\/")
        write_private(
            self.sign_in_page,
            '<!doctype html>\n<meta charset="utf-8">\n'
            '<meta name="referrer" content="no-referrer">\n'
            "<title>asyncrpc dashboard</title>\n"
            f"<script>location.replace({target});</script>\n"
            f'<p><a href="{html.escape(url)}">Open the asyncrpc dashboard</a></p>\n',
        )
        return self.sign_in_page

    def log_names(self) -> list[str]:
        """Names of every replica with a log file here (without the supervisor's own)."""
        if not self.logs.is_dir():
            return []
        return sorted(p.stem for p in self.logs.glob("*.log") if p.stem != LAUNCHER_LOG)
