"""``isthmus status``: the links of one cluster and what they import, at a glance."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import click

from isthmus.api.models import ConditionStatus, GlobalService, Link
from isthmus.errors import ConfigError
from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import GLOBALSERVICES, LINKS


def _age(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _cond(conditions: list[Any], kind: str) -> str:
    c = next((c for c in conditions if c.type == kind), None)
    if c is None:
        return "-"
    return "yes" if c.status is ConditionStatus.TRUE else f"no ({c.reason})"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def render(links: list[Link], services: list[GlobalService], now: dt.datetime) -> str:
    """Pure: the report for the given objects."""
    out = []
    rows = [["PEER", "GATEWAY", "READY", "SYNCED", "SERVICES", "CATALOG", "LAST SYNC"]]
    for link in sorted(links, key=lambda x: x.metadata.name):
        gw = ",".join(f"{a.host}:{a.port}" for a in link.spec.gateway_addresses)
        rows.append([link.spec.cluster, gw, _cond(link.status.conditions, "Ready"),
                     _cond(link.status.conditions, "Synced"),
                     str(link.status.imported_services or 0),
                     str(link.status.catalog_version or "-"),
                     _age(link.status.last_sync_time, now)])
    out.append(_table(rows) if links else "no links (run isthmus join)")
    rows = [["GLOBAL SERVICE", "VIP", "CLUSTERS", "STATE"]]
    for gs in sorted(services, key=lambda g: (g.metadata.namespace or "", g.metadata.name)):
        clusters = ",".join(f"{e.cluster}({e.health.value.lower()})" for e in gs.spec.endpoints)
        rows.append([gs.spec.hosts[0], ",".join(gs.status.vips) or "-", clusters or "-",
                     "stale" if gs.status.stale else "fresh"])
    out.append(_table(rows) if services else "no imported services")
    return "\n\n".join(out)


async def _read(
    kubeconfig: str | None, context: str | None
) -> tuple[list[Link], list[GlobalService]]:
    api = await KubeApi.connect(kubeconfig, context)
    try:
        links = [Link.model_validate(i) for i in (await api.list(LINKS))["items"]]
        services = [GlobalService.model_validate(i)
                    for i in (await api.list(GLOBALSERVICES))["items"]]
        return links, services
    finally:
        await api.close()


@click.command("status")
@click.option("--context", default=None, help="Kubeconfig context (default: current).")
@click.option("--kubeconfig", default=None, metavar="PATH[:PATH...]", help="Kubeconfig file(s).")
def command(context: str | None, kubeconfig: str | None) -> None:
    """Show this cluster's links (readiness, freshness) and the services it imports."""
    try:
        links, services = asyncio.run(_read(kubeconfig, context))
    except kube_errors.NotFoundError as exc:
        raise ConfigError("isthmus is not installed here (no CRDs); run isthmus install") from exc
    except kube_errors.KubeError as exc:
        raise ConfigError(f"cannot read the cluster: {exc}") from exc
    click.echo(render(links, services, dt.datetime.now(dt.UTC)))
