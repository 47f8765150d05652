"""Every number a person gives is read by one strict reader, from the CLI, the environment
or a query string: what each accepts and refuses, and the one shape of its message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import typer
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.cli.options import parse_port, parse_positive_seconds, parse_seconds
from asyncrpc.gateway import query
from asyncrpc.gateway.settings import gateway_settings
from asyncrpc.node.worker import node_settings
from asyncrpc.runtime import config, numbers
from asyncrpc.runtime.errors import SettingsError, UsageError
from asyncrpc.supervise.targets import parse_delays, parse_node_selector, parse_scale

#: What no reader accepts, whatever its bounds: each is a number to int() or float().
NEVER_A_NUMBER = [
    "\u00b2",  # a superscript 2: str.isdigit() says yes, int() says no
    "\uff15",  # a fullwidth 5: int() says 5
    "\u0663",  # an Arabic-Indic 3
    "1e3",
    "inf",
    "nan",
    "1_0",
    "+5",
    "-0",
    " 5",
    "5 ",
    "0x10",
    "",
    "9" * 5000,
]
#: The same without blanks: `--scale b= 2` and `b.2 ` are trimmed as names are, then read.
NOT_DIGITS = [text for text in NEVER_A_NUMBER if text.strip() == text and text]


# The reader itself.


@pytest.mark.parametrize(
    ("reader", "text", "value"),
    [
        (numbers.PORT, "1", 1),
        (numbers.PORT, "65535", 65535),
        (numbers.PORT, "08001", 8001),
        (numbers.REPLICAS, "16", 16),
        (numbers.WholeNumber(0, 3), "0", 0),
        (numbers.SECONDS, "0", 0.0),
        (numbers.SECONDS, "2", 2.0),
        (numbers.SECONDS, "0.5", 0.5),
        (numbers.SECONDS, ".5", 0.5),
        (numbers.SECONDS, "5.", 5.0),
        (numbers.SECONDS, "86400", 86400.0),
        (numbers.POSITIVE_SECONDS, "0.001", 0.001),
        (numbers.Seconds(high=3600), "3600", 3600.0),
    ],
)
def test_plain_digits_within_bounds_are_read(
    reader: numbers.Reader[float], text: str, value: float
) -> None:
    assert reader.read(text) == value
    assert type(reader.read(text)) is type(value)


@pytest.mark.parametrize(
    ("reader", "text"),
    [
        *((numbers.PORT, text) for text in NEVER_A_NUMBER),
        *((numbers.SECONDS, text) for text in NEVER_A_NUMBER),
        (numbers.PORT, "0"),
        (numbers.PORT, "65536"),
        (numbers.PORT, "80.0"),
        (numbers.REPLICAS, "17"),
        (numbers.SECONDS, "-1"),
        (numbers.SECONDS, "86400.5"),
        (numbers.SECONDS, "1e400"),
        (numbers.SECONDS, "."),
        (numbers.SECONDS, "1.2.3"),
        (numbers.POSITIVE_SECONDS, "0"),
        (numbers.POSITIVE_SECONDS, "0.0"),
        (numbers.Seconds(high=3600), "3600.5"),
    ],
)
def test_anything_else_is_refused(reader: numbers.Reader[float], text: str) -> None:
    with pytest.raises(numbers.NumberError):
        reader.read(text)


@pytest.mark.parametrize(
    ("reader", "text", "name", "message"),
    [
        (
            numbers.PORT,
            "\u00b2",
            "ASYNCRPC_GATEWAY_PORT",
            "ASYNCRPC_GATEWAY_PORT='\u00b2' is not valid: "
            "use a whole number from 1 to 65535, written with digits 0-9",
        ),
        (
            numbers.SECONDS,
            "1e3",
            None,
            "'1e3' is not valid: use a number of seconds from 0 up to 86400, "
            "written with digits 0-9 (e.g. 2 or 0.5)",
        ),
        (
            numbers.POSITIVE_SECONDS,
            "0",
            "--ttl",
            "--ttl='0' is not valid: use a number of seconds above 0 up to 86400, "
            "written with digits 0-9 (e.g. 2 or 0.5)",
        ),
    ],
)
def test_one_message_shape_names_the_value_and_what_is_valid(
    reader: numbers.Reader[float], text: str, name: str | None, message: str
) -> None:
    with pytest.raises(numbers.NumberError) as refused:
        reader.read(text, name)

    assert str(refused.value) == message


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(numbers.NumberError) as refused:
        numbers.PORT.read("9" * 5000, "--port")

    assert len(str(refused.value)) < 150


@pytest.mark.parametrize(
    ("reader", "value", "accepted"),
    [
        (numbers.PORT, 5000, True),
        (numbers.PORT, 70000, False),
        (numbers.SECONDS, 0, True),
        (numbers.SECONDS, 2.5, True),
        (numbers.SECONDS, -1.0, False),
        (numbers.SECONDS, float("nan"), False),
        (numbers.SECONDS, float("inf"), False),
        (numbers.POSITIVE_SECONDS, 0.0, False),
    ],
)
def test_a_value_given_in_code_is_held_to_the_same_bounds(
    reader: numbers.Reader[float], value: float, accepted: bool
) -> None:
    if accepted:
        assert reader.check(value, "--x") == value
    else:
        with pytest.raises(numbers.NumberError, match=r"^--x="):
            reader.check(value, "--x")


# From the command line: the Typer parsers and the NAME=VALUE options of `up`.


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (parse_port, "5000", 5000),
        (parse_seconds, "0", 0.0),
        (parse_positive_seconds, "30", 30.0),
    ],
)
def test_cli_options_accept_plain_digits(
    parse: Callable[[object], float], text: str, value: float
) -> None:
    assert parse(text) == value


@pytest.mark.parametrize("text", [*NEVER_A_NUMBER, "0", "70000"])
def test_cli_port_option_refuses(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not valid: use a whole number from 1"):
        parse_port(text)


@pytest.mark.parametrize("text", [*NEVER_A_NUMBER, "0"])
def test_cli_positive_seconds_option_refuses(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not valid: use a number of seconds above 0"):
        parse_positive_seconds(text)


def test_scale_delay_and_replica_read_the_same_way() -> None:
    assert parse_scale(["b=2", "c=16"]) == {"b": 2, "c": 16}
    assert parse_delays(["c=10", "d=0.5"]) == {"c": 10.0, "d": 0.5}
    assert parse_node_selector("b.3").replica == 3


@pytest.mark.parametrize("text", NOT_DIGITS)
def test_scale_delay_and_replica_refuse_the_same_texts(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--scale b=.* is not valid: use a whole number"):
        parse_scale([f"b={text}"])
    with pytest.raises(UsageError, match=r"^--delay c=.* is not valid: use a number of seconds"):
        parse_delays([f"c={text}"])
    with pytest.raises(UsageError, match="whole number from 1 to 16"):
        parse_node_selector(f"b.{text}")


# From the environment: what a worker node and the gateway read at start.


@pytest.mark.parametrize(
    ("env", "delay", "ttl"),
    [
        ({}, 0.0, config.DEFAULT_NODE_TTL),
        ({config.ENV_DELAY: "", config.ENV_TTL: ""}, 0.0, config.DEFAULT_NODE_TTL),
        ({config.ENV_DELAY: "10", config.ENV_TTL: "0.5"}, 10.0, 0.5),
    ],
)
def test_a_node_reads_its_numbers_from_the_environment(
    env: dict[str, str], delay: float, ttl: float
) -> None:
    settings = node_settings("b", env)

    assert (settings.delay, settings.ttl) == (delay, ttl)


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        *((config.ENV_DELAY, text) for text in NEVER_A_NUMBER if text),
        *((config.ENV_TTL, text) for text in NEVER_A_NUMBER if text),
        (config.ENV_DELAY, "-1"),
        (config.ENV_DELAY, "86401"),
        (config.ENV_TTL, "0"),
    ],
)
def test_a_node_refuses_a_bad_number_in_the_environment(variable: str, text: str) -> None:
    with pytest.raises(SettingsError) as refused:
        node_settings("b", {variable: text})

    assert str(refused.value).startswith(f"{variable}=")
    assert "is not valid: use a number of seconds" in str(refused.value)


def test_the_delay_variable_is_refused_where_the_option_is() -> None:
    """`ASYNCRPC_DELAY=1e3` means what `--delay 1e3` means: nothing, so both are refused."""
    with pytest.raises(SettingsError, match=config.ENV_DELAY):
        node_settings("b", {config.ENV_DELAY: "1e3"})


@pytest.mark.parametrize(("text", "port"), [("", 5000), ("5001", 5001), ("65535", 65535)])
def test_the_gateway_reads_its_port_from_the_environment(text: str, port: int) -> None:
    assert gateway_settings({config.ENV_GATEWAY_PORT: text}).port == port


@pytest.mark.parametrize("text", [t for t in NEVER_A_NUMBER if t] + ["0", "65536"])
def test_the_gateway_refuses_a_bad_port_in_the_environment(text: str) -> None:
    with pytest.raises(SettingsError, match=f"^{config.ENV_GATEWAY_PORT}=.* is not valid"):
        gateway_settings({config.ENV_GATEWAY_PORT: text})


def test_a_superscript_port_in_the_environment_is_a_message_not_a_traceback() -> None:
    result = CliRunner().invoke(app, ["node", "gateway"], env={config.ENV_GATEWAY_PORT: "\u00b2"})

    assert result.exit_code == 2, result.output
    assert f"{config.ENV_GATEWAY_PORT}='\u00b2' is not valid" in result.output
    assert "from 1 to 65535" in result.output


# From a query string: the gateway's `wait`.


@pytest.mark.parametrize(
    ("sent", "wait"), [(None, None), ("0", 0.0), ("30", 30.0), ("0.25", 0.25), ("3600", 3600.0)]
)
def test_the_wait_query_is_read_as_seconds(sent: str | None, wait: float | None) -> None:
    assert query.wait({} if sent is None else {"wait": sent}) == wait


@pytest.mark.parametrize("sent", [*NEVER_A_NUMBER, "-1", "3600.5", "99999"])
def test_the_wait_query_refuses_what_the_options_refuse(sent: str) -> None:
    with pytest.raises(query.InvalidQuery, match=r"^wait=.* is not valid: use a number of seconds"):
        query.wait({"wait": sent})
