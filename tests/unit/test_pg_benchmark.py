"""The resonate-pg benchmark's choice of systems (``--pg-systems``)."""

from __future__ import annotations

import pytest
import typer

from benchmarks import pg_history
from benchmarks.cli import PG_SYSTEMS, pg_system_list


def test_the_systems_one_may_choose_are_the_parts_contenders() -> None:
    assert tuple(contender.name for contender in pg_history.CONTENDERS) == PG_SYSTEMS


def test_a_list_of_systems_is_read_and_checked() -> None:
    assert pg_system_list(None) is None
    assert pg_system_list(" fresh, plain ") == ("fresh", "plain")
    with pytest.raises(typer.BadParameter, match=r"unknown system.*valid: fresh, 30k"):
        pg_system_list("fresh,stale")
    with pytest.raises(typer.BadParameter, match="none given"):
        pg_system_list(",")
