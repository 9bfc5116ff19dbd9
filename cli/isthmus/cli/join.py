"""``isthmus join`` and ``isthmus unjoin``: link (or unlink) every pair of clusters given.

Join reads, from each cluster, its ``isthmus-cluster`` ConfigMap (name, trust domain,
gateway addresses, locality) and its trust bundle; it checks everything first, and only then
writes one ``Link`` per peer into each cluster. It refuses, writing nothing anywhere, when
two clusters share no root, when names repeat, or when any cluster is not installed.
No Kubernetes credential ever leaves a cluster: peers learn only gateway addresses and
trust domains.

Unjoin deletes those Links; the mirror controller then removes exactly the objects each link
created (and the CLI does it directly if asked to). Running it twice is harmless.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import click

from isthmus.api.models import Link, LinkSpec, ObjectMeta
from isthmus.clusterinfo import CONFIGMAP_NAME, ClusterInfo
from isthmus.errors import ConfigError, IsthmusError
from isthmus.kube import errors as kube_errors
from isthmus.kube.apply import apply
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import CONFIGMAPS, LINKS
from isthmus.labels import MANAGED_BY, MANAGED_BY_LABEL, SYSTEM_NAMESPACE
from isthmus.logging import get_logger

log = get_logger("isthmus.join")
FIELD_MANAGER = "isthmus-join"


class JoinError(IsthmusError):
    """The clusters cannot be linked as asked; nothing was written."""


@dataclass(frozen=True)
class Member:
    context: str
    info: ClusterInfo
    root_fingerprints: frozenset[str]


def check_members(members: list[Member]) -> None:
    """Pure: refuse a set of clusters that cannot be linked, saying exactly why."""
    if len(members) < 2:
        raise JoinError("join needs at least two clusters (--context A --context B)")
    names = [m.info.cluster for m in members]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise JoinError(f"cluster names must be unique; repeated: {', '.join(dupes)}")
    for a, b in itertools.combinations(members, 2):
        if not a.root_fingerprints & b.root_fingerprints:
            raise JoinError(
                f"clusters {a.info.cluster!r} ({a.context}) and {b.info.cluster!r} ({b.context}) "
                "share no trust root; nothing was written. Put a common root in both bundles "
                "(isthmus trust bundle) before joining."
            )


def desired_links(members: list[Member]) -> dict[str, list[dict[str, Any]]]:
    """Pure: for each context, the Link objects it should hold (one per peer)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for me in members:
        links = []
        for peer in members:
            if peer is me:
                continue
            link = Link(
                metadata=ObjectMeta(
                    name=peer.info.cluster, labels={MANAGED_BY_LABEL: MANAGED_BY}
                ),
                spec=LinkSpec(
                    cluster=peer.info.cluster,
                    trust_domain=peer.info.trust_domain,
                    gateway_addresses=list(peer.info.gateway_addresses),
                    locality=peer.info.locality,
                ),
            )
            wire = link.to_wire()
            wire.pop("status", None)
            links.append(wire)
        out[me.context] = links
    return out


async def _read_member(api: KubeApi, context: str) -> Member:
    from isthmus.trust import BUNDLE_CONFIGMAP, bundle_from_configmap

    try:
        info_cm = await api.get(CONFIGMAPS, CONFIGMAP_NAME, SYSTEM_NAMESPACE)
        bundle_cm = await api.get(CONFIGMAPS, BUNDLE_CONFIGMAP, SYSTEM_NAMESPACE)
    except kube_errors.NotFoundError as exc:
        raise JoinError(
            f"context {context!r} is not set up for isthmus: {exc.message} "
            "(run `isthmus install` and `isthmus trust bundle` there first)"
        ) from exc
    info = ClusterInfo.from_configmap(info_cm)
    bundle = bundle_from_configmap(bundle_cm)
    return Member(context, info, frozenset(bundle.fingerprints))


async def _connect_all(kubeconfig: str | None, contexts: list[str]) -> dict[str, KubeApi]:
    apis: dict[str, KubeApi] = {}
    try:
        for ctx in contexts:
            apis[ctx] = await KubeApi.connect(kubeconfig, ctx)
    except BaseException:
        await asyncio.gather(*(a.close() for a in apis.values()))
        raise
    return apis


async def join(kubeconfig: str | None, contexts: list[str]) -> dict[str, list[str]]:
    """Link every pair; returns, per context, the names of the Links written."""
    if len(set(contexts)) != len(contexts):
        raise JoinError("each --context may be given once")
    apis = await _connect_all(kubeconfig, contexts)
    try:
        members = [await _read_member(apis[c], c) for c in contexts]
        check_members(members)  # everything is checked before anything is written
        written: dict[str, list[str]] = {}
        for context, links in desired_links(members).items():
            for link in links:
                await apply(apis[context], link, field_manager=FIELD_MANAGER, force=True)
                written.setdefault(context, []).append(link["metadata"]["name"])
                log.info("link written", context=context, peer=link["metadata"]["name"])
        return written
    finally:
        await asyncio.gather(*(a.close() for a in apis.values()))


async def unjoin(kubeconfig: str | None, contexts: list[str]) -> dict[str, list[str]]:
    """Delete the Links between every pair given, then exactly the objects the mirror wrote
    for each (the mirror does the same when it sees a Link go; doing it here too means it
    happens even when no mirror runs). Absent Links and objects are not an error."""
    from isthmus.mirror.cleanup import remove_link_objects

    apis = await _connect_all(kubeconfig, contexts)
    try:
        names = {c: (await _read_member(apis[c], c)).info.cluster for c in contexts}
        removed: dict[str, list[str]] = {}
        for context in contexts:
            for peer_ctx in contexts:
                if peer_ctx == context:
                    continue
                peer = names[peer_ctx]
                try:
                    await apis[context].delete(LINKS, peer)
                    removed.setdefault(context, []).append(peer)
                    log.info("link removed", context=context, peer=peer)
                except kube_errors.NotFoundError:
                    pass
                count = await remove_link_objects(apis[context], peer)
                if count:
                    removed.setdefault(context, []).append(f"{count} mirrored object(s) of {peer}")
        return removed
    finally:
        await asyncio.gather(*(a.close() for a in apis.values()))


_context_option = click.option(
    "--context", "contexts", multiple=True, required=True, metavar="CONTEXT",
    help="A kubeconfig context of a cluster to link; give two or more.",
)
_kubeconfig_option = click.option(
    "--kubeconfig", default=None, metavar="PATH[:PATH...]",
    help="Kubeconfig file(s), ':'-separated as in $KUBECONFIG (default: $KUBECONFIG).",
)


@click.command("join")
@_context_option
@_kubeconfig_option
def command(contexts: tuple[str, ...], kubeconfig: str | None) -> None:
    """Link every pair of the given clusters so each imports the others' exported services.

    Each cluster must be installed (ConfigMap isthmus-system/isthmus-cluster) and hold a
    trust bundle; clusters that share no root are refused and nothing is written anywhere.
    """
    if len(contexts) < 2:
        raise click.UsageError("give at least two --context")
    try:
        written = asyncio.run(join(kubeconfig, list(contexts)))
    except kube_errors.KubeError as exc:
        raise ConfigError(str(exc)) from exc
    for context, links in written.items():
        click.echo(f"{context}: linked to {', '.join(sorted(links))}")


@click.command("unjoin")
@_context_option
@_kubeconfig_option
def unjoin_command(contexts: tuple[str, ...], kubeconfig: str | None) -> None:
    """Remove the Links between the given clusters (their mirrors are then cleaned up).

    Safe to run more than once.
    """
    if len(contexts) < 2:
        raise click.UsageError("give at least two --context")
    removed = asyncio.run(unjoin(kubeconfig, list(contexts)))
    for context in contexts:
        peers = removed.get(context, [])
        click.echo(f"{context}: removed {', '.join(sorted(peers)) if peers else 'nothing'}")
