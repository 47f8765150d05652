"""How a process talks to the Resonate server: the transports under the SDK.

Above the lesson (a process joins the group the topology names) and below every
process that joins: the gateway and the nodes.

- :mod:`.lean_http`: protocol requests over lean keep-alive HTTP/1.1 (the hot path).
- :mod:`.bounded`: a request channel that gives up, for callers who wait on an answer.
- :mod:`.start_channel`: sends a start's create and listen together, patiently.
- :mod:`.heartbeat`: lease renewals only for tasks that outlive an interval.
- :mod:`.join`: a Resonate client in a group, with the poll stream that feeds it.
- :mod:`.postgres_link`: a process's one connection to a resonate-pg database.
"""
