"""``isthmus check``: what is wrong with isthmus in one cluster, and how to fix it.

Each check is a small function returning findings; ``run_checks`` reads the cluster once and
calls them. Exit status follows ``isthmus trust check``: 0 all good, 3 warnings, 1 errors
(an expired certificate is an error that names it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import click
from cryptography import x509

from isthmus.api.crds import CRD_NAMES
from isthmus.api.models import ConditionStatus, GlobalService, Link
from isthmus.clusterinfo import CONFIGMAP_NAME, ClusterInfo
from isthmus.errors import ConfigError, IsthmusError
from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import (
    CLUSTERPROPERTIES,
    CONFIGMAPS,
    CRDS,
    ENDPOINTSLICES,
    GLOBALSERVICES,
    LEASES,
    LINKS,
    SECRETS,
    SERVICES,
)
from isthmus.labels import (
    GATEWAY_TLS_SECRET,
    MIRROR_LEASE,
    MIRROR_TLS_SECRET,
    SYSTEM_NAMESPACE,
)
from isthmus.lease import last_renewed, lease_free
from isthmus.mirror.names import GATEWAY_SERVICE

EXIT_OK, EXIT_ERROR, EXIT_WARNING = 0, 1, 3
CERT_SECRETS = ("isthmus-cluster-ca", GATEWAY_TLS_SECRET, MIRROR_TLS_SECRET)


class Level(IntEnum):
    OK = 0
    WARNING = 1
    ERROR = 2


@dataclass(frozen=True)
class Finding:
    level: Level
    what: str
    message: str

    def line(self) -> str:
        tag = {Level.OK: "ok", Level.WARNING: "WARNING", Level.ERROR: "ERROR"}[self.level]
        return f"{tag:<8} {self.what}: {self.message}"


@dataclass(frozen=True)
class Observed:
    """What ``check`` reads from the cluster (None: absent)."""

    crds: dict[str, dict[str, Any] | None]
    cluster_info: dict[str, Any] | None
    bundle: dict[str, Any] | None
    secrets: dict[str, dict[str, Any] | None]
    links: list[dict[str, Any]]
    global_services: list[dict[str, Any]]
    lease: dict[str, Any] | None = None  # the mirror's leader-election Lease
    # EndpointSlices of Service isthmus-system/isthmus-gateway (None: not read)
    gateway_slices: list[dict[str, Any]] | None = None
    coredns: dict[str, Any] | None = None  # ConfigMap kube-system/coredns, if the cluster has one
    dns_service: dict[str, Any] | None = None  # Service isthmus-system/isthmus-dns
    # ClusterProperty cluster.clusterset.k8s.io (None: absent, or no such CRD)
    cluster_property: dict[str, Any] | None = None


def check_crds(obs: Observed) -> list[Finding]:
    out = []
    for name in CRD_NAMES:
        crd = obs.crds.get(name)
        conds = ((crd or {}).get("status") or {}).get("conditions") or []
        if crd is None:
            out.append(Finding(Level.ERROR, f"CRD {name}", "not installed (run isthmus install)"))
        elif not any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
            out.append(Finding(Level.ERROR, f"CRD {name}", "not established"))
        else:
            out.append(Finding(Level.OK, f"CRD {name}", "established"))
    return out


def check_identity(obs: Observed) -> list[Finding]:
    what = f"ConfigMap {SYSTEM_NAMESPACE}/{CONFIGMAP_NAME}"
    if obs.cluster_info is None:
        return [Finding(Level.ERROR, what, "missing (run isthmus install)")]
    try:
        info = ClusterInfo.from_configmap(obs.cluster_info)
    except ConfigError as exc:
        return [Finding(Level.ERROR, what, str(exc))]
    gateways = ", ".join(f"{a.host}:{a.port}" for a in info.gateway_addresses)
    return [Finding(Level.OK, what, f"cluster {info.cluster}, gateway {gateways}")]


def _certs(obj: dict[str, Any]) -> list[tuple[str, x509.Certificate]]:
    from isthmus.trust.manifests import certs_in_object

    found = []
    for label, pem in certs_in_object(obj):
        for index, cert in enumerate(x509.load_pem_x509_certificates(pem)):
            found.append((f"{label}#{index + 1}" if index else label, cert))
    return found


def check_certificates(obs: Observed, now: dt.datetime, warn_days: int) -> list[Finding]:
    from isthmus.trust.expiry import Level as TrustLevel
    from isthmus.trust.expiry import check_expiry

    out: list[Finding] = []
    sources: list[tuple[str, dict[str, Any] | None]] = [
        ("ConfigMap isthmus-trust-bundle", obs.bundle),
        *((f"Secret {name}", obj) for name, obj in obs.secrets.items()),
    ]
    for what, obj in sources:
        if obj is None:
            # The leaf Secrets are created (empty) by install; the mirror can only fill them.
            hint = ("(run isthmus install)" if what.endswith("-tls")
                    else "(see isthmus trust --help)")
            out.append(Finding(Level.ERROR, what, f"missing {hint}"))
            continue
        if what.endswith("-tls") and not ((obj.get("data") or {}).get("tls.crt")):
            out.append(Finding(Level.WARNING, what,
                               "no certificate yet (is the mirror running? it issues leaves)"))
            continue
        try:
            certs = _certs(obj)
        except (IsthmusError, ValueError) as exc:
            out.append(Finding(Level.ERROR, what, f"unreadable: {exc}"))
            continue
        for f in check_expiry(certs, now, dt.timedelta(days=warn_days)):
            level = {TrustLevel.OK: Level.OK, TrustLevel.WARNING: Level.WARNING,
                     TrustLevel.ERROR: Level.ERROR}[f.level]
            out.append(Finding(level, f.label, f"{f.subject}: {f.message}"))
    return out


def check_links(obs: Observed) -> list[Finding]:
    out = []
    if not obs.links:
        out.append(Finding(Level.WARNING, "Links", "none (run isthmus join)"))
    for raw in obs.links:
        link = Link.model_validate(raw)
        ready = next((c for c in link.status.conditions if c.type == "Ready"), None)
        what = f"Link {link.metadata.name}"
        if ready is None:
            out.append(Finding(Level.WARNING, what, "no status yet (is the mirror running?)"))
        elif ready.status is not ConditionStatus.TRUE:
            out.append(Finding(Level.WARNING, what, f"not ready: {ready.reason}: {ready.message}"))
        else:
            out.append(Finding(Level.OK, what,
                               f"ready, {link.status.imported_services or 0} services imported"))
    for raw in obs.global_services:
        gs = GlobalService.model_validate(raw)
        if gs.status.stale:
            cond = gs.status.condition("Stale")
            reason = f"{cond.reason}: {cond.message}" if cond else ""
            out.append(Finding(Level.WARNING, f"GlobalService {gs.metadata.namespace}/"
                               f"{gs.metadata.name}", f"stale ({reason})"))
    return out


def check_lease(obs: Observed, now: dt.datetime) -> list[Finding]:
    """The mirror only leads while it holds its Lease, and may not create it (least
    privilege: ``isthmus install`` does)."""
    what = f"Lease {SYSTEM_NAMESPACE}/{MIRROR_LEASE}"
    if obs.lease is None:
        return [Finding(Level.ERROR, what,
                        "missing (run isthmus install): the mirror waits and never leads")]
    spec = obs.lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return [Finding(Level.WARNING, what, "no mirror holds it (is the mirror running?)")]
    try:
        renewed = last_renewed(spec)
        expired = lease_free(spec, "", now)  # free for anyone: its holder stopped renewing
    except ValueError:
        renewed, expired = None, True
    if expired:
        ago = f"{int((now - renewed).total_seconds())} s ago" if renewed else "never"
        return [Finding(Level.WARNING, what,
                        f"held by {holder} but not renewed ({ago}; is the mirror running?)")]
    return [Finding(Level.OK, what, f"held by {holder}")]


def _ready(endpoint: dict[str, Any]) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and not conditions.get("terminating")


def check_gateway(obs: Observed) -> list[Finding]:
    """Peers reach this cluster, and its workloads reach theirs, only through a ready
    gateway; the kubelet reports a dead or unready gateway pod as a not-ready endpoint."""
    if obs.gateway_slices is None:
        return []
    what = f"Gateway {SYSTEM_NAMESPACE}/{GATEWAY_SERVICE}"
    ready = sum(_ready(e) for s in obs.gateway_slices for e in s.get("endpoints") or [])
    if not ready:
        return [Finding(Level.ERROR, what,
                        "down: no ready endpoint (is the gateway pod running and ready?); "
                        "peers cannot reach this cluster and calls out of it fail")]
    return [Finding(Level.OK, what, f"{ready} ready endpoint(s)")]


def check_coredns(obs: Observed) -> list[Finding]:
    """CoreDNS must send the ``global`` zone to isthmus-dns (``install`` adds the stub)."""
    from isthmus.dns.coredns import forward_targets
    from isthmus.dns.errors import CorefileError

    what = "CoreDNS kube-system/coredns"
    if obs.coredns is None:
        return [Finding(Level.OK, what, "no such ConfigMap: the cluster's DNS must forward "
                        "`global` to isthmus-dns by other means")]
    dns_ip = str(((obs.dns_service or {}).get("spec") or {}).get("clusterIP") or "")
    try:
        targets = forward_targets((obs.coredns.get("data") or {}).get("Corefile", ""))
    except CorefileError as exc:
        return [Finding(Level.ERROR, what, f"Corefile unreadable: {exc}")]
    if targets is None:
        return [Finding(Level.ERROR, what, "the `global` stub zone is gone: .global names do "
                        "not resolve in pods (run isthmus install again)")]
    if dns_ip and dns_ip not in targets:
        return [Finding(Level.ERROR, what, f"the `global` stub zone forwards to "
                        f"{', '.join(targets) or 'nothing'}, not isthmus-dns ({dns_ip}) "
                        "(run isthmus install again)")]
    return [Finding(Level.OK, what, f"forwards global to {', '.join(targets)}")]


def check_clusterset_stub(obs: Observed) -> list[Finding]:
    """CoreDNS should send ``clusterset.local`` to isthmus-dns too (the MCS names)."""
    from isthmus.dns.coredns import forward_targets
    from isthmus.dns.errors import CorefileError

    what = "CoreDNS stub zone clusterset.local"
    if obs.coredns is None:
        return []  # said once, by check_coredns
    dns_ip = str(((obs.dns_service or {}).get("spec") or {}).get("clusterIP") or "")
    try:
        targets = forward_targets((obs.coredns.get("data") or {}).get("Corefile", ""),
                                  "clusterset.local")
    except CorefileError:
        return []  # reported by check_coredns
    if targets is None:
        return [Finding(Level.WARNING, what, "missing: <svc>.<ns>.svc.clusterset.local names "
                        "do not resolve in pods (run isthmus install again)")]
    if dns_ip and dns_ip not in targets:
        return [Finding(Level.ERROR, what, f"forwards to {', '.join(targets) or 'nothing'}, "
                        f"not isthmus-dns ({dns_ip}) (run isthmus install again)")]
    return [Finding(Level.OK, what, f"forwards to {', '.join(targets)}")]


def check_cluster_property(obs: Observed) -> list[Finding]:
    """The ClusterProperty cluster.clusterset.k8s.io must name this cluster, if it exists."""
    what = "ClusterProperty cluster.clusterset.k8s.io"
    if obs.cluster_property is None:
        return [Finding(Level.OK, what, "absent (the mirror writes it when the CRD exists)")]
    value = (obs.cluster_property.get("spec") or {}).get("value")
    try:
        cluster = ClusterInfo.from_configmap(obs.cluster_info).cluster if obs.cluster_info \
            else None
    except ConfigError:
        cluster = None
    if cluster is not None and value != cluster:
        return [Finding(Level.ERROR, what, f"says {value!r}, but this cluster is {cluster!r}: "
                        "the mirror does not overwrite it; correct one of the two")]
    return [Finding(Level.OK, what, f"{value}")]


def evaluate(obs: Observed, now: dt.datetime, warn_days: int = 30) -> list[Finding]:
    """Pure: every finding for what was observed."""
    return [*check_crds(obs), *check_identity(obs), *check_certificates(obs, now, warn_days),
            *check_lease(obs, now), *check_gateway(obs), *check_coredns(obs),
            *check_clusterset_stub(obs), *check_cluster_property(obs), *check_links(obs)]


def exit_code(findings: list[Finding]) -> int:
    worst = max((f.level for f in findings), default=Level.OK)
    return {Level.OK: EXIT_OK, Level.WARNING: EXIT_WARNING, Level.ERROR: EXIT_ERROR}[worst]


async def _get(api: KubeApi, res: Any, name: str, ns: str | None = None) -> dict[str, Any] | None:
    try:
        return await api.get(res, name, ns)
    except kube_errors.NotFoundError:
        return None


async def observe(api: KubeApi) -> Observed:
    from isthmus.trust.manifests import BUNDLE_CONFIGMAP

    crds = {name: await _get(api, CRDS, name) for name in CRD_NAMES}
    installed = all(crds.values())
    return Observed(
        crds=crds,
        cluster_info=await _get(api, CONFIGMAPS, CONFIGMAP_NAME, SYSTEM_NAMESPACE),
        bundle=await _get(api, CONFIGMAPS, BUNDLE_CONFIGMAP, SYSTEM_NAMESPACE),
        secrets={n: await _get(api, SECRETS, n, SYSTEM_NAMESPACE) for n in CERT_SECRETS},
        lease=await _get(api, LEASES, MIRROR_LEASE, SYSTEM_NAMESPACE),
        gateway_slices=(await api.list(
            ENDPOINTSLICES, SYSTEM_NAMESPACE,
            label_selector=f"kubernetes.io/service-name={GATEWAY_SERVICE}"))["items"],
        coredns=await _get(api, CONFIGMAPS, "coredns", "kube-system"),
        dns_service=await _get(api, SERVICES, "isthmus-dns", SYSTEM_NAMESPACE),
        cluster_property=await _get(api, CLUSTERPROPERTIES, "cluster.clusterset.k8s.io"),
        links=(await api.list(LINKS))["items"] if installed else [],
        global_services=(await api.list(GLOBALSERVICES))["items"] if installed else [],
    )


async def _run(kubeconfig: str | None, context: str | None) -> Observed:
    api = await KubeApi.connect(kubeconfig, context)
    try:
        return await observe(api)
    finally:
        await api.close()


@click.command("check")
@click.option("--context", default=None, help="Kubeconfig context (default: current).")
@click.option("--kubeconfig", default=None, metavar="PATH[:PATH...]", help="Kubeconfig file(s).")
@click.option("--warn-days", default=30, show_default=True, type=click.IntRange(min=0),
              help="Warn about certificates expiring within this many days.")
def command(context: str | None, kubeconfig: str | None, warn_days: int) -> None:
    """Check one cluster: CRDs, identity, trust bundle, certificates, links.

    \b
    Exit status: 0 all good; 3 warnings only; 1 errors (an expired certificate is
    an error that names it).
    """
    try:
        observed = asyncio.run(_run(kubeconfig, context))
    except kube_errors.KubeError as exc:
        raise ConfigError(f"cannot read the cluster: {exc}") from exc
    findings = evaluate(observed, dt.datetime.now(dt.UTC), warn_days)
    for finding in findings:
        click.echo(finding.line())
    code = exit_code(findings)
    if code == EXIT_ERROR:
        errors = [f"{f.what} ({f.message})" for f in findings if f.level is Level.ERROR]
        raise ConfigError(f"{len(errors)} problem(s): " + "; ".join(errors))
    if code:
        click.get_current_context().exit(code)
