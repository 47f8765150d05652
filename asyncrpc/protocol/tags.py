"""The tags the Resonate SDKs set on promises, as the protocol spells them.

Our server (``asyncrpc/server/``) and our readers (``asyncrpc/readers/``)
speak the same protocol; its vocabulary lives here once so neither layer
imports the other.
"""

from __future__ import annotations

ORIGIN_TAG = "resonate:origin"
BRANCH_TAG = "resonate:branch"
PARENT_TAG = "resonate:parent"
TARGET_TAG = "resonate:target"
TIMER_TAG = "resonate:timer"
EXTERNAL_TAG = "resonate:external"
DELAY_TAG = "resonate:delay"
