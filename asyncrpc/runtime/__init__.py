"""What every asyncrpc process does the same way: settings, strict numbers, serving, signals.

The lowest layer (beside protocol): plumbing that knows no flow, node or command, so
the server, the gateway, the nodes, the supervisor and the CLI all use it.

- :mod:`.config`: defaults and environment variables shared by every process.
- :mod:`.numbers`: numbers a person types, read strictly (digits 0-9, finite, bounded).
- :mod:`.errors`: the errors a person reads (message and exit code), never a trace.
- :mod:`.local_http`: one HTTP request from a command to the supervisor or the gateway, stdlib only.
- :mod:`.serving`: an ASGI app on uvicorn, on a socket bound here, ending in exit code 0 on SIGTERM.
- :mod:`.event_loop`: a main coroutine on the fastest event loop this system has.
- :mod:`.signals`: SIGTERM treated like Ctrl-C, for commands that clean up what they started.
- :mod:`.log_lines`: one log line per record, whatever text a peer put into it.
- :mod:`.process`: what every long-running process (node, gateway) checks and prints the same way.
- :mod:`.metrics`: Prometheus counters and latency histograms a hot path can afford.
"""
