"""The Resonate protocol as this project reads it: words, states and records, no I/O.

The lowest layer (beside runtime): pure data and pure functions that the server, the
readers, the gateway, the demo and the dashboard all share, so none of them spells a
tag or a state on its own. It imports nothing else of asyncrpc.

- :mod:`.tags`: the tags the SDKs set on promises.
- :mod:`.states`: a promise's states (:class:`~.states.PromiseState`).
- :mod:`.records`: a durable promise, typed, its param and value decoded.
- :mod:`.call_graph`: an invocation's promises arranged as the tree of calls that made them.
- :mod:`.errors`: what a caller of an invocation is told when something goes wrong, in words.
"""
