"""Calling the gateway's routes over HTTP, for the end-to-end tests of the flows."""

from __future__ import annotations

import httpx


def post(gateway_url: str, route: str, timeout: float = 60.0, **params: object) -> httpx.Response:
    """``POST gateway_url + route`` with ``params`` as the query string."""
    return httpx.post(f"{gateway_url}{route}", params=params, timeout=timeout)
