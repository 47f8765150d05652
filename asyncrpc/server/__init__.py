"""asyncrpc's own Resonate server: the SDK's protocol state machine behind HTTP + SSE, on SQLite."""
