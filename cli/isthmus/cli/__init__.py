"""isthmus.cli: the ``isthmus`` command and the operator commands (join, install, check,
status).

This layer sits above the components: it may import mirror, gateway, dns and trust, and
nothing below it imports it back. ``app`` holds the command group; each subcommand is
imported only when it runs.
"""

from isthmus.cli.app import SUBCOMMANDS, cli, main

__all__ = ["SUBCOMMANDS", "cli", "main"]
