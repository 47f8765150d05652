"""The `asyncrpc` command line: one module per family of commands.

Commands stay thin: they parse options and call plain functions elsewhere in
the package. Importing a command module registers its commands on ``app``.
"""

from asyncrpc.cli import (  # noqa: F401  (importing registers the commands)
    demo_cmd,
    launcher_cmds,
    node_cmd,
    server_cmd,
    tree_cmd,
)
from asyncrpc.cli.app import app

__all__ = ["app"]
