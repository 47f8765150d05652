"""The garbage collector of a long-running process that serves many short requests.

What exists before a process serves (its modules, its app) lives as long as the
process: frozen (:func:`gc.freeze`), no collection walks it again. Each request
or step makes objects that their references free at once; a young collection
only walks the ones alive when it runs, so running one every ``young_every``
allocations rather than every 700 (the default) walks fewer per request. The
gateway and the nodes each pick their ``young_every`` (docs/architecture.md).
"""

from __future__ import annotations

import gc


def collect_less(young_every: int) -> None:
    """Freeze what exists now, and run a young collection every ``young_every`` allocations."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_every, middle, old)
