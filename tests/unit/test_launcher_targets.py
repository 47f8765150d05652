"""The launcher's reading of names typed by a person: targets, NAME=VALUE options, node names."""

from __future__ import annotations

import pytest

from asyncrpc.lesson import topology
from asyncrpc.runtime.errors import EXIT_USAGE, UsageError
from asyncrpc.supervise.plan import Plan, ReplicaSpec
from asyncrpc.supervise.targets import (
    WORKERS,
    NodeSelector,
    parse_delays,
    parse_node_selector,
    parse_scale,
    resolve_targets,
    select,
)


def test_no_target_means_everything() -> None:
    assert resolve_targets([]) == (True, WORKERS)


@pytest.mark.parametrize("flow", list(topology.FLOWS.values()), ids=lambda flow: flow.name)
def test_a_flow_brings_the_gateway_and_its_nodes(flow: topology.Flow) -> None:
    assert resolve_targets([flow.name]) == (True, flow.nodes)


def test_flow_alias_and_node_names_combine_in_topology_order() -> None:
    fan_out = topology.FLOWS["fan-out"]
    gateway, workers = resolve_targets(["fan-out-workflow", "b"])
    assert gateway
    assert workers == tuple(node for node in WORKERS if node in {"b", *fan_out.nodes})


def test_a_node_brings_only_itself() -> None:
    assert resolve_targets(["b", "a"]) == (False, ("a", "b"))
    assert resolve_targets(["gateway"]) == (True, ())
    assert resolve_targets(["server"]) == (False, ())


def test_unknown_target_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_targets(["await-chian"])
    message = str(caught.value)
    assert "await-chian" in message
    for name in [*topology.flow_names(), topology.GATEWAY, *topology.NODES]:
        assert name in message
    assert caught.value.exit_code == EXIT_USAGE


def test_selectors() -> None:
    assert parse_node_selector("b") == NodeSelector("b")
    assert parse_node_selector("b.2") == NodeSelector("b", 2)
    assert parse_node_selector("server") == NodeSelector("server")
    assert parse_node_selector("gateway.1") == NodeSelector("gateway", 1)
    assert str(parse_node_selector("h.3")) == "h.3"
    assert parse_node_selector("b").matches("b", 7)
    assert not parse_node_selector("b.2").matches("b", 1)


@pytest.mark.parametrize("text", ["z", "b.0", "b.x", "b.", "gateway.2", "await-chain", ""])
def test_bad_selectors_say_what_is_valid(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_node_selector(text)
    assert caught.value.exit_code == EXIT_USAGE
    assert repr(text) in str(caught.value) or text.partition(".")[0] in str(caught.value)


def test_scale_and_delay_values() -> None:
    assert parse_scale(["b=2", "h=3,c=1"]) == {"b": 2, "h": 3, "c": 1}
    assert parse_delays(["c=10", "b=0.5"]) == {"c": 10.0, "b": 0.5}


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        (["b"], "NODE=VALUE"),
        (["b=0"], "whole number"),
        (["b=two"], "whole number"),
        (["x=2"], "unknown node 'x'"),
        (["gateway=2"], "worker nodes"),
    ],
)
def test_bad_scale(values: list[str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_scale(values)


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf", "1e400", "1_0", "\uff15", "86401"])
def test_bad_delay(value: str) -> None:
    with pytest.raises(UsageError, match="seconds from 0 up to 86400"):
        parse_delays([f"c={value}"])


@pytest.mark.parametrize("text", ["b.\u00b2", "b.17", "b.+1", "b. 1", "b.1_0", "b." + "9" * 5000])
def test_a_replica_number_is_digits_from_1_to_16(text: str) -> None:
    with pytest.raises(UsageError, match="from 1 to 16") as caught:
        parse_node_selector(text)
    assert len(str(caught.value)) < 200  # a huge input is not echoed whole


def test_scale_has_an_upper_bound() -> None:
    assert parse_scale(["b=16"]) == {"b": 16}
    with pytest.raises(UsageError, match="from 1 to 16"):
        parse_scale(["b=17"])


def test_options_must_name_a_started_node() -> None:
    selection = select(["await-chain"], ["b=2"], ["c=5"])
    assert selection.replica_count("b") == 2
    assert selection.replica_count("a") == 1
    assert selection.delays == {"c": 5.0}
    with pytest.raises(UsageError, match="not among the targets"):
        select(["await-chain"], ["h=2"])
    with pytest.raises(UsageError, match="not among the targets"):
        select(["gateway"], [], ["c=1"])


def test_plan_commands_follow_the_process_contract(tmp_path) -> None:
    plan = Plan(
        run_dir=tmp_path,
        server_url="http://127.0.0.1:9001",
        embedded_server=True,
        server_port=9001,
        gateway_port=9002,
        ttl=2.0,
        program=("py",),
    )
    server = plan.command(ReplicaSpec("server"), "unused", None, {"RESONATE_TOKEN": "t"})
    assert server == [
        "py", "server", "--host", "127.0.0.1", "--port", "9001",
        "--db", str(tmp_path / "server.db"),
    ]  # fmt: skip
    gateway = plan.command(ReplicaSpec("gateway"), "gw-1", None, {})
    assert gateway[:2] == ["py", "node"] and gateway[2] == "gateway"
    assert gateway[-2:] == ["--port", "9002"] and "--id" in gateway
    worker = plan.command(ReplicaSpec("c", 2), "c-2-0000", 10.0, {})
    assert worker == [
        "py", "node", "c", "--server-url", "http://127.0.0.1:9001", "--id", "c-2-0000",
        "--delay", "10", "--ttl", "2",
    ]  # fmt: skip
    assert plan.ready_url(ReplicaSpec("server")) == "http://127.0.0.1:9001/healthz"
    assert plan.ready_url(ReplicaSpec("gateway")) == "http://127.0.0.1:9002/healthz"
    assert plan.ready_url(ReplicaSpec("c", 2)) is None
    assert Plan.from_json(plan.to_json()) == plan
    assert ReplicaSpec("b", 2).name == "b.2" and ReplicaSpec("gateway").name == "gateway"
