"""Id patterns: an id with ``*`` wildcards, each matching any run of characters (none too).

``await-chain-*``, ``*:d*``, ``nightly-*``; a pattern without ``*`` names one id. The
promise search (:mod:`asyncrpc.readers.promises`), the schedule reads and the embedded
server's ``schedule.search`` read patterns by this one rule, so a pattern means the same
wherever it is typed.
"""

from __future__ import annotations

import functools
import re

#: The wildcard of a pattern: any run of characters, none included.
WILDCARD = "*"


@functools.lru_cache(maxsize=256)
def id_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regular expression to ``fullmatch`` ids with."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split(WILDCARD)), re.DOTALL)


def matches(pattern: str, identifier: str) -> bool:
    """Whether ``identifier`` is one of the ids ``pattern`` names."""
    return id_pattern(pattern).fullmatch(identifier) is not None
