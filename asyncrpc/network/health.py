"""Whether a process's link to its server works, and if not, why: for `/healthz` and logs."""

from __future__ import annotations

from dataclasses import dataclass

#: A message source whose last good exchange with the server is older than this
#: counts as cut off: a resonate-pg link drains every quarter second, so seconds
#: of silence mean its requests hang on a link that no longer carries them.
STALE_AFTER_S = 4.0


@dataclass(frozen=True)
class LinkHealth:
    """``ok``, or not and ``reason`` says why (in words a person acts on)."""

    ok: bool
    reason: str = ""


HEALTHY = LinkHealth(True)
