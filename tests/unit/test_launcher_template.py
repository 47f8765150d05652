"""The fork template is used only where forking is safe: Linux, unless it is turned off.

tests/e2e/test_launcher_template.py forks replicas from it.
"""

from __future__ import annotations

from asyncrpc.runtime import config
from asyncrpc.supervise.template_client import template_enabled


def test_template_is_used_only_where_fork_is_safe() -> None:
    assert template_enabled({}, platform="linux")
    assert not template_enabled({config.ENV_TEMPLATE: "0"}, platform="linux")
    assert not template_enabled({}, platform="darwin")
    assert not template_enabled({}, platform="win32")
