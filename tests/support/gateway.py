"""The gateway in tests: its client on the SDK's in-process server, and its routes over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from resonate_base.connections import Network

from asyncrpc.gateway.membership import ClientFactory, GatewayClient
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.network.health import HEALTHY, LinkHealth
from tests.support.in_process import local_reader, watched_in_process


def post(gateway_url: str, route: str, timeout: float = 60.0, **params: object) -> httpx.Response:
    """``POST gateway_url + route`` with ``params`` as the query string."""
    return httpx.post(f"{gateway_url}{route}", params=params, timeout=timeout)


def local_client(
    delay: float = 0.0,
    connected: bool = True,
    around: Callable[[Network], Network] = lambda requests: requests,
) -> ClientFactory:
    """A gateway client factory whose client runs flows on the SDK's in-process server."""

    def make(_: GatewaySettings) -> GatewayClient:
        resonate, channel, server = watched_in_process(delay, around)
        health = HEALTHY if connected else LinkHealth(False, "no poll stream yet")
        return GatewayClient(resonate, channel, local_reader(server), lambda: health)

    return make
