"""asyncrpc's own Resonate server: the protocol's state machine behind HTTP + SSE, on SQLite."""
