"""Invocations: starting, re-attaching to and reading the durable runs of the flows.

- :mod:`.records`: typed promise records, decoded from the server's answers.
- :mod:`.server_reader`: the one client that reads the server (``promise.get``,
  ``promise.search``), sync and async.
- :mod:`.call_graph`: an invocation's promises arranged as a tree.
- :mod:`.runner`: start or re-attach to an invocation and wait for its result.
- :mod:`.errors`: what a caller is told when that goes wrong.
"""
