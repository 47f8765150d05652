"""asyncrpc: Resonate's Async RPC example, crash recovery included, in one CLI.

One folder per concern, in layers, lowest first; a module imports only its own layer
or lower ones (tests/unit/test_layers.py checks it, and says why each layer sits where
it does): protocol, runtime < lesson < network, readers < server, postgres, node,
gateway < supervise < ops < terminal < dashboard, demo < cli < entrypoints.
"""
