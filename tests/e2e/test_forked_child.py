"""A forked child's exit code, whatever way its function ends (it forks: end-to-end)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest

from asyncrpc.runtime.forked_child import fork_child
from tests.support.forking import FORKS_BESIDE_LIBUV_WORKERS

pytestmark = FORKS_BESIDE_LIBUV_WORKERS


def exits(code: int | str | None) -> int:
    sys.exit(code)


def raises() -> int:
    raise RuntimeError("the child's own failure")


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        (lambda: 0, 0),
        (lambda: 7, 7),
        (lambda: exits(None), 0),
        (lambda: exits(3), 3),
        (lambda: exits("a message"), 1),
        (raises, 1),
    ],
)
def test_the_child_exits_with_its_code_and_never_returns_here(
    child: Callable[[], int], expected: int
) -> None:
    parent = os.getpid()
    pid = fork_child(child)
    assert os.getpid() == parent  # only the parent gets here: the child always exits
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == expected
