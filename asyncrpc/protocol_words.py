"""The Resonate protocol's shared words: promise states and the tags the SDKs set.

Our server (``asyncrpc/server/``) and our clients (``asyncrpc/invocations/``)
speak the same protocol; its vocabulary lives here once so neither layer
imports the other.
"""

from __future__ import annotations

import enum

ORIGIN_TAG = "resonate:origin"
BRANCH_TAG = "resonate:branch"
PARENT_TAG = "resonate:parent"
TARGET_TAG = "resonate:target"
TIMER_TAG = "resonate:timer"
EXTERNAL_TAG = "resonate:external"
DELAY_TAG = "resonate:delay"


class PromiseState(enum.StrEnum):
    """A promise's state, as the protocol spells it."""

    PENDING = "pending"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    REJECTED_CANCELED = "rejected_canceled"
    REJECTED_TIMEDOUT = "rejected_timedout"
