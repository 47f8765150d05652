"""The HTTP gateway: where an ephemeral HTTP request becomes a durable invocation.

One of the processes of the running system, beside the server and the nodes: it joins
through the network layer and reads through the readers, and knows nothing of the
supervisor that starts it.

- :mod:`.settings`: what it listens on and which server it uses, validated.
- :mod:`.membership`: its Resonate client (group ``gateway``) and its server reader.
- :mod:`.invocations`: start, re-attach to and read an invocation of a flow.
- :mod:`.query`: the flow routes' query (``id``, ``wait``), read and checked by hand.
- :mod:`.app`: the FastAPI app; each handler calls :mod:`.invocations`.
- :mod:`.metrics`: ``GET /metrics``: invocations by flow and outcome, their latency.
- :mod:`.main`: running it on uvicorn until SIGTERM/SIGINT.
"""
