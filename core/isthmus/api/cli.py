"""``isthmus crds``: print the CustomResourceDefinitions (for ``kubectl apply -f -``)."""

from __future__ import annotations

import click
import yaml

from isthmus.api.crds import load_crds, load_mcs_crds


@click.command("crds")
@click.option("--mcs/--no-mcs", default=True, show_default=True,
              help="Also print the MCS CRDs (ServiceExport, ServiceImport) and "
                   "ClusterProperty. Leave them out when the cluster already has them.")
def command(mcs: bool) -> None:
    """Print the isthmus CustomResourceDefinitions as YAML, ready for `kubectl apply -f -`."""
    docs = load_crds() + (load_mcs_crds() if mcs else [])
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
