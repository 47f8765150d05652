"""What a caller of :mod:`asyncrpc.gateway.invocations` is told when something goes wrong.

The gateway maps each class to an HTTP status; the CLI prints the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncrpc.protocol.records import PromiseRecord


class InvocationError(Exception):
    """Something a caller should be told about in words, not a stack trace."""


class InvalidInvocationId(InvocationError):
    """The invocation id cannot be used."""


class ServerUnavailable(InvocationError):
    """The Resonate server did not answer (a start then says "started": false: NOT started)."""


class NotStarted(ServerUnavailable):
    """The invocation was NOT started: the server never confirmed creating it; send the id again."""

    def __init__(self, invocation_id: str, reason: str) -> None:
        super().__init__(
            f"invocation {invocation_id} was NOT started: {reason}. Send the same id again once "
            "the server answers: that starts it (or finds it, should this attempt have reached "
            "the server after all)."
        )
        self.invocation_id = invocation_id
        self.reason = reason


class ServerRefused(InvocationError):
    """The Resonate server answered with an error."""


class UnknownInvocation(InvocationError):
    """No invocation has this id."""


class InvocationConflict(InvocationError):
    """The id is taken by an invocation of a different function."""


class InvocationFailed(InvocationError):
    """The invocation settled, but not with a value."""

    def __init__(self, invocation: PromiseRecord) -> None:
        super().__init__(f"invocation {invocation.id} {invocation.state}: {invocation.error}")
        self.invocation = invocation


def unreachable(where: str, exc: Exception) -> ServerUnavailable:
    """The error for a server at ``where`` (shown without its password) that did not answer."""
    return ServerUnavailable(f"the Resonate server at {where} is unreachable: {exc}")
