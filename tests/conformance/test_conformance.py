"""Our server answers every scenario exactly as Resonate's server (resonate.sql) does.

Three tests per scenario:

- ``test_reference_behaviour[...]`` plays it on resonate.sql alone and checks the
  expectations written beside each step, so the scenarios themselves are known
  to capture the reference's behaviour (``-k reference`` runs only these);
- ``test_server_conforms[...]`` plays it on both servers and compares every
  response (status, kind, head, the whole record; error text only as being
  text; a null field as a missing one) and every pushed message; a step marked
  as differing on purpose (docs/protocol.md says why) is checked against what
  our server is meant to answer instead;
- ``test_server_sends_no_nulls[...]`` checks that no answer or message of our
  server holds a JSON null it wrote itself: the TypeScript SDK rejects a record
  with ``"settledAt": null`` or ``"data": null`` where it expects the field left
  out (tags are the client's own and come back as sent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.peers import EnginePeer, ReferencePeer
from tests.conformance.scenarios import SCENARIOS
from tests.conformance.script import (
    Observation,
    Scenario,
    addresses,
    build,
    null_paths,
    run,
)

IDS = [scenario.__name__ for scenario in SCENARIOS]


def failures_of(observations: list[Observation]) -> list[str]:
    return [f"step {o.step} ({o.what}): {failure}" for o in observations for failure in o.failures]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_reference_behaviour(scenario: Scenario, reference_connection: Any) -> None:
    observations = run(ReferencePeer(reference_connection), build(scenario))
    assert not failures_of(observations), "\n".join(failures_of(observations))


def run_on_server(steps: list, db: Path) -> list[Observation]:
    server = EnginePeer(db, addresses(steps))
    try:
        return run(server, steps, ours=True)
    finally:
        server.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_server_conforms(scenario: Scenario, reference_connection: Any, tmp_path: Path) -> None:
    steps = build(scenario)
    expected = run(ReferencePeer(reference_connection), steps)
    actual = run_on_server(steps, tmp_path / "server.db")
    differences = [
        f"step {want.step} ({want.what}):\n  resonate.sql: {render(want.seen)}\n"
        f"  asyncrpc:     {render(got.seen)}"
        for want, got in zip(expected, actual, strict=True)
        if want.seen != got.seen and got.differs is None
    ]
    on_purpose = [
        f"step {o.step} ({o.what}), which differs on purpose ({o.differs}): {failure}"
        for o in actual
        if o.differs is not None
        for failure in o.failures
    ]
    assert not differences + on_purpose, "\n".join(differences + on_purpose)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_server_sends_no_nulls(
    scenario: Scenario, reference_connection: Any, tmp_path: Path
) -> None:
    nulls = [
        f"step {o.step} ({o.what}): null at {', '.join(paths)}"
        for o in run_on_server(build(scenario), tmp_path / "server.db")
        if o.raw is not None and (paths := null_paths(o.raw))  # a timer step shows nothing
    ]
    assert not nulls, "\n".join(nulls)


def render(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)
