"""How a process talks to the Resonate server: the transports under the SDK.

- :mod:`.lean_http`: protocol requests over lean keep-alive HTTP/1.1 (the hot path).
- :mod:`.bounded`: a request channel that gives up, for callers who wait on an answer.
- :mod:`.create_watch`: hands an invocation's start the server's answer to its create.
- :mod:`.heartbeat`: lease renewals only for tasks that outlive an interval.
- :mod:`.join`: a Resonate client in a group, with the poll stream that feeds it.
"""
