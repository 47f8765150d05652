"""Reading the Resonate server back: promises by id, by search, as a call graph.

Above protocol (it returns its records) and the lesson, and below every process that
reads: the gateway answers ``GET /invocations`` with it, ops finds the detached chain's
result, the demo and the dashboard draw call graphs. It reads only; it never joins a group.

- :mod:`.server_reader`: :class:`~.server_reader.ServerReader` and
  :class:`~.server_reader.AsyncServerReader`, over HTTP or a resonate-pg database.
- :mod:`.promises`: promises by id pattern and state, newest first (`asyncrpc promises`).
"""
