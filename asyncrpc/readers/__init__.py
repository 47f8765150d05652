"""Reading the Resonate server back: promises by id, by search, as a call graph.

Above protocol (it returns its records) and the lesson, and below every process that
reads: the gateway answers ``GET /invocations`` with it, ops finds the detached chain's
result, the demo and the dashboard draw call graphs. It reads only; it never joins a group.

- :mod:`.server_reader`: :class:`~.server_reader.ServerReader` and
  :class:`~.server_reader.AsyncServerReader`, twins with one API, over HTTP or a
  resonate-pg database (chosen by the URL).
- :mod:`.http`: the HTTP transport (httpx), sync and async side by side.
- :mod:`.postgres`: the resonate-pg transport (psycopg): ``resonate_rpc`` for reads,
  the promises table for searches (resonate-pg answers ``promise.search`` with 501).
- :mod:`.promises`: promises by id pattern and state, newest first (`asyncrpc promises`).
"""
