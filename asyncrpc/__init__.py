"""asyncrpc."""
