"""The ``isthmus`` command.

Subcommands live with the component they drive and are imported only when used, so
``isthmus --help`` stays fast and one broken component cannot take the others down. Any
``IsthmusError`` becomes a one-line message on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from isthmus.errors import IsthmusError
from isthmus.grpc_tls import pin_tls13
from isthmus.logging import configure

# name -> ("module:attribute", one-line help). Order is the order shown in --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "mirror": ("isthmus.mirror.cli:command", "Run the service-mirror controller."),
    "gateway": ("isthmus.gateway.cli:command", "Run the mTLS east-west gateway."),
    "dns": ("isthmus.dns.cli:command", "Run the authoritative *.global DNS responder."),
    "trust": ("isthmus.trust.cli:group", "Manage the trust root, cluster CAs and bundles."),
    "join": ("isthmus.cli.join:command", "Link clusters so they import each other's services."),
    "unjoin": ("isthmus.cli.join:unjoin_command", "Remove the links between clusters."),
    "check": ("isthmus.cli.check:command", "Tell what is wrong with this cluster's isthmus."),
    "status": ("isthmus.cli.status:command", "Show links, freshness and imported services."),
    "install": ("isthmus.cli.install:command", "Render or apply the manifests for one cluster."),
    "crds": ("isthmus.api.cli:command", "Print the isthmus CustomResourceDefinitions."),
    "demo": ("isthmus.cli.demo:group", "Echo workloads (HTTP, gRPC, TCP) and their client."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use.

    Listing imports nothing, and a component that fails to import breaks only its own
    command, with a message saying so."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise click.ClickException(f"{cmd_name}: this build cannot load it ({exc})") from exc
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table, so --help imports nothing heavy.
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="isthmus", prog_name="isthmus")
@click.option(
    "--log-level", default="warning", show_default=True, envvar="ISTHMUS_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Level for log lines on stderr (components also take their own --log-level).",
)
@click.option(
    "--log-format", default="json", show_default=True, envvar="ISTHMUS_LOG_FORMAT",
    type=click.Choice(["json", "console"]), help="JSON lines, or a human console format.",
)
def cli(log_level: str, log_format: str) -> None:
    """isthmus links Kubernetes clusters so a workload in one calls a Service in another
    as <service>.<namespace>.global, over mutual TLS under one shared trust root, with no
    change to the application.

    \b
    Typical flow (two clusters, contexts west and east):
      isthmus trust init --trust-domain example.org --out ./root
      isthmus install --context west --cluster west --trust-domain example.org \\
          --gateway-address 203.0.113.10:15443
      isthmus trust cluster-ca --root ./root --cluster west --context west
      isthmus trust bundle --root ./root --context west
      (the same three for east)
      isthmus join --context west --context east
      isthmus check --context west
    """
    configure(log_level, json=log_format == "json")


def main(argv: list[str] | None = None) -> Any:
    # Before any subcommand imports grpc: the catalog speaks TLS 1.3 only (isthmus.grpc_tls).
    pin_tls13()
    try:
        return cli.main(args=argv, prog_name="isthmus", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except IsthmusError as exc:
        click.echo(f"isthmus: error: {exc}", err=True)
        sys.exit(1)
