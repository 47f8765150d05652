"""A promise's states, as the Resonate protocol spells them."""

from __future__ import annotations

import enum


class PromiseState(enum.StrEnum):
    """A promise's state, as the protocol spells it."""

    PENDING = "pending"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    REJECTED_CANCELED = "rejected_canceled"
    REJECTED_TIMEDOUT = "rejected_timedout"
