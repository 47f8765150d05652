"""A unit test starts no process: it runs in this one, so `pytest -m "not e2e"` stays fast.

An audit hook (PEP 578) sees every process this interpreter starts: subprocess,
os.fork, os.posix_spawn, the os.exec and os.spawn families, os.system. From the
setup of a unit test (its fixtures included) to its teardown, each one is noted,
and the test then fails naming what it started: such a test belongs in tests/e2e/.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

#: The audit events of starting a process.
STARTS = frozenset(
    {
        "subprocess.Popen",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.exec",
        "os.spawn",
        "os.system",
        "pty.spawn",
    }
)


@dataclass
class Starts:
    """The processes started while a unit test runs."""

    watching: bool = False
    seen: list[str] = field(default_factory=list)

    def audit(self, event: str, args: tuple[object, ...]) -> None:
        if self.watching and event in STARTS:
            self.seen.append(f"{event} {args[1] if event == 'subprocess.Popen' else ''}".strip())


STARTED = Starts()
sys.addaudithook(STARTED.audit)  # hooks cannot be removed; this one only notes while watching


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    STARTED.seen.clear()
    STARTED.watching = True
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    # The last test's teardown also ends the session's fixtures (the conformance suite's
    # Postgres, say), which are no unit test's doing: its own teardown goes unwatched.
    STARTED.watching = nextitem is not None
    try:
        result = yield
    finally:
        STARTED.watching = False
    if STARTED.seen:
        started = "\n  ".join(STARTED.seen)
        pytest.fail(
            f"{item.nodeid} started a process; a unit test starts none "
            f"(move it to tests/e2e/):\n  {started}",
            pytrace=False,
        )
    return result
