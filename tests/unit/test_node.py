"""Node settings (options > environment > defaults), the ready line, and `asyncrpc node` errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.gateway.settings import gateway_settings
from asyncrpc.lesson import services
from asyncrpc.node.worker import node_settings, with_pause
from asyncrpc.runtime import config
from asyncrpc.runtime.process import SettingsError, ready_line


def fixed_hex(_: int) -> str:
    return "beef"


def test_defaults() -> None:
    settings = node_settings("b", {}, random_hex=fixed_hex)

    assert settings.node_id == "b-beef"
    assert settings.server_url == config.DEFAULT_SERVER_URL
    assert settings.ttl == config.DEFAULT_NODE_TTL
    assert settings.delay == 0
    assert settings.token is None
    assert settings.node.group == "service-b"
    assert settings.node.function == "bar"


def test_environment_then_options() -> None:
    env = {
        config.ENV_SERVER_URL: "http://10.0.0.1:9000/",
        config.ENV_NODE_ID: "b-env",
        config.ENV_DELAY: "7",
        config.ENV_TTL: "2.5",
        config.ENV_TOKEN: "secret",
    }

    from_env = node_settings("b", env)
    from_options = node_settings(
        "b", env, server_url="http://127.0.0.1:1", node_id="b-opt", delay=1, ttl=9
    )

    assert (from_env.server_url, from_env.node_id, from_env.delay, from_env.ttl) == (
        "http://10.0.0.1:9000",
        "b-env",
        7.0,
        2.5,
    )
    assert from_env.token == "secret"
    assert (from_options.server_url, from_options.node_id, from_options.delay) == (
        "http://127.0.0.1:1",
        "b-opt",
        1.0,
    )
    assert from_options.ttl == 9.0


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({"ttl": 0}, {}, "--ttl='0' is not valid: use a number of seconds above 0"),
        ({"delay": -1}, {}, "--delay='-1' is not valid: use a number of seconds from 0"),
        ({}, {config.ENV_DELAY: "soon"}, f"{config.ENV_DELAY}='soon' is not valid: use a number"),
        ({}, {config.ENV_TTL: "nan"}, f"{config.ENV_TTL}='nan' is not valid: use a number"),
        ({"node_id": "b/1"}, {}, "node id 'b/1' is not valid"),
        ({"server_url": "localhost:8001"}, {}, "server URL 'localhost:8001' is not valid"),
    ],
)
def test_bad_values_say_what_is_valid(kwargs: dict, env: dict, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        node_settings("b", env, **kwargs)
    assert message in str(raised.value)


def test_unknown_node_lists_the_valid_ones() -> None:
    with pytest.raises(SettingsError) as raised:
        node_settings("z", {})
    assert "a, b, c, d, e, f, g, h, i or gateway" in str(raised.value)


def test_ready_line_names_node_group_id_and_server() -> None:
    line = ready_line("b", "service-b", "b-1", "http://127.0.0.1:8001", ttl="5s")

    assert line == (
        f"{config.READY_MARKER} node=b group=service-b id=b-1 server=http://127.0.0.1:8001 ttl=5s"
    )


def test_gateway_settings() -> None:
    settings = gateway_settings({config.ENV_SERVER_URL: "http://h:1"}, random_hex=fixed_hex)

    assert settings.gateway_id == "gateway-beef"
    assert settings.server_url == "http://h:1"
    assert settings.url == f"http://{config.DEFAULT_HOST}:{config.DEFAULT_GATEWAY_PORT}"
    with pytest.raises(
        SettingsError, match="--port='70000' is not valid: use a whole number from 1 to 65535"
    ):
        gateway_settings({}, port=70000)


def test_the_gateways_start_timeout_comes_from_the_option_else_the_environment() -> None:
    env = {config.ENV_START_TIMEOUT: "7.5"}
    assert gateway_settings({}).start_timeout == config.DEFAULT_START_TIMEOUT
    assert gateway_settings(env).start_timeout == 7.5
    assert gateway_settings(env, start_timeout=2).start_timeout == 2
    with pytest.raises(SettingsError, match="ASYNCRPC_START_TIMEOUT='soon' is not valid"):
        gateway_settings({config.ENV_START_TIMEOUT: "soon"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["node", "z"], "unknown node 'z'"),
        (["node", "b", "--ttl", "0"], "Invalid value for '--ttl': '0' is not valid"),
        (["node", "b", "--delay", "-1"], "Invalid value for '--delay': '-1' is not valid"),
        (["node", "b", "--port", "5001"], "apply to the gateway only"),
        (["node", "b", "--start-timeout", "5"], "apply to the gateway only"),
        (["node", "gateway", "--start-timeout", "0"], "'0' is not valid"),
        (["node", "gateway", "--delay", "3"], "apply to worker nodes"),
        (["node", "gateway", "--port", "0"], "Invalid value for '--port': '0' is not valid"),
        (["node", "b", "--server-url", "localhost:8001"], "is not valid"),
    ],
)
def test_bad_node_command_exits_2_with_a_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args, env={})

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_demo_delay_wraps_a_function_only_when_there_is_one() -> None:
    function = services.FUNCTIONS["bar"]

    assert with_pause(function, 0) is function
    paused = with_pause(function, 1.5)
    assert paused is not function
    assert (paused.__name__, paused.__doc__) == (function.__name__, function.__doc__)
