"""The HTTP gateway: where an ephemeral HTTP request becomes a durable invocation.

- :mod:`.settings`: what it listens on and which server it uses, validated.
- :mod:`.client`: its Resonate client (group ``gateway``) and its server reader.
- :mod:`.query`: the flow routes' query (``id``, ``wait``), read and checked by hand.
- :mod:`.app`: the FastAPI app; each handler calls :mod:`asyncrpc.invocations`.
- :mod:`.main`: running it on uvicorn until SIGTERM/SIGINT.
"""
