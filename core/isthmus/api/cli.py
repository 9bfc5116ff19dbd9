"""``isthmus crds``: print the CustomResourceDefinitions (for ``kubectl apply -f -``)."""

from __future__ import annotations

import click
import yaml

from isthmus.api.crds import load_crds


@click.command("crds")
def command() -> None:
    """Print the isthmus CustomResourceDefinitions as YAML, ready for `kubectl apply -f -`."""
    click.echo(yaml.safe_dump_all(load_crds(), sort_keys=False), nl=False)
