"""`python -m asyncrpc` runs the same program as the `asyncrpc` script."""

from asyncrpc.entrypoints.command import main

main()
