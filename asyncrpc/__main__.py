"""`python -m asyncrpc` runs the same CLI as the `asyncrpc` script."""

from asyncrpc.cli import main

main()
