"""The gateway's settings: options first, then environment variables, then defaults."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from asyncrpc.gateway.invocations import DEFAULT_WAIT
from asyncrpc.lesson import topology
from asyncrpc.network.bounded import DEFAULT_REQUEST_TIMEOUT
from asyncrpc.runtime import config, numbers
from asyncrpc.runtime.process import check_node_id, check_server_url, default_node_id


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway needs, validated."""

    server_url: str
    gateway_id: str
    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_GATEWAY_PORT
    token: str | None = None
    default_wait: float = DEFAULT_WAIT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    #: Seconds a start sends its create again while the server does not answer; then 503.
    start_timeout: float = config.DEFAULT_START_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def gateway_settings(
    env: Mapping[str, str],
    *,
    host: str | None = None,
    port: int | None = None,
    server_url: str | None = None,
    gateway_id: str | None = None,
    start_timeout: float | None = None,
    random_hex: Callable[[int], str] = secrets.token_hex,
) -> GatewaySettings:
    """The settings from options and ``env``; :class:`SettingsError` says what is wrong."""
    return GatewaySettings(
        server_url=check_server_url(config.server_url(env, server_url)),
        gateway_id=check_node_id(
            gateway_id
            or env.get(config.ENV_NODE_ID)
            or default_node_id(topology.GATEWAY, random_hex)
        ),
        host=host or config.DEFAULT_HOST,
        port=numbers.option_or_env(
            port, "--port", env, config.ENV_GATEWAY_PORT, numbers.PORT, config.DEFAULT_GATEWAY_PORT
        ),
        token=env.get(config.ENV_TOKEN) or None,
        start_timeout=start_timeout_of(env, start_timeout),
    )


def start_timeout_of(env: Mapping[str, str], option: float | None = None) -> float:
    """``--start-timeout``, else ``ASYNCRPC_START_TIMEOUT``, else the default; seconds above 0."""
    return numbers.option_or_env(
        option,
        "--start-timeout",
        env,
        config.ENV_START_TIMEOUT,
        numbers.POSITIVE_SECONDS,
        config.DEFAULT_START_TIMEOUT,
    )
