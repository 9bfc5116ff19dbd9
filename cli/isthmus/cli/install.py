"""``isthmus install``: render (or apply) everything one cluster runs.

The documents come from manifests/ (shipped inside the package): the namespace, the CRDs,
each component's ServiceAccount, least-privilege RBAC, Deployment and Service, plus this
cluster's identity ConfigMap. With ``--context`` they are applied by server-side apply, the
two leaf Secrets (``isthmus-gateway-tls``, ``isthmus-mirror-tls``) and the mirror's Lease
(``isthmus-mirror``) are created empty if absent (never overwritten: the mirror fills the
Secrets and holds the Lease, with only ``patch`` / ``get, update`` on them), and
CoreDNS's Corefile (ConfigMap kube-system/coredns, if the cluster has one) gets stub zones
that forward ``global`` and ``clusterset.local`` to isthmus-dns. The shared MCS CRDs are
created only when absent. Without it, YAML goes to stdout for
``kubectl apply -f -`` and the CoreDNS change is printed as a comment for the operator.

Where peers reach the gateway: ``--gateway-address`` says it; without it (and with
``--context``), install works it out from the gateway Service once it has one: the load
balancer's address (``--expose loadbalancer``, the default) or a node address and the node port
(``--expose nodeport``, for clusters with no load balancer, such as kind).

Trust material is separate on purpose (``isthmus trust cluster-ca``/``bundle``): the root's
key never needs to be near the machine that installs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import click
import yaml

from isthmus.api.crds import create_if_absent, is_shared_crd, load_crds, load_mcs_crds
from isthmus.api.models import GatewayAddress, Locality
from isthmus.clusterinfo import ClusterInfo, parse_address
from isthmus.errors import ConfigError
from isthmus.kube import errors as kube_errors
from isthmus.labels import (
    GATEWAY_TLS_SECRET,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MIRROR_LEASE,
    MIRROR_TLS_SECRET,
    SYSTEM_NAMESPACE,
)

COMPONENTS = ("mirror", "gateway", "dns")
GATEWAY_SERVICE = "isthmus-gateway"
GATEWAY_PORT_NAME = "tls-inbound"
EXPOSE_TYPES = {"loadbalancer": "LoadBalancer", "nodeport": "NodePort"}
DEFAULT_IMAGE = "isthmus:0.1.0"
FIELD_MANAGER = "isthmus-install"
# Apply order: what others refer to comes first (a stable sort keeps file order otherwise).
_ORDER = {kind: i for i, kind in enumerate((
    "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role",
    "ClusterRoleBinding", "RoleBinding", "ConfigMap", "Secret", "Service", "Deployment",
))}


def component_manifests(image: str, expose: str = "loadbalancer") -> list[dict[str, Any]]:
    """Every document under manifests/<component>/, with the container image set and the
    gateway Service of the ``expose`` type."""
    docs: list[dict[str, Any]] = []
    root = resources.files("isthmus.manifests")
    for component in COMPONENTS:
        folder = root.joinpath(component)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".yaml"):
                continue
            for doc in yaml.safe_load_all(entry.read_text()):
                # kube-system objects (the CoreDNS example) are edited, never applied whole.
                if isinstance(doc, dict) and doc["metadata"].get("namespace") != "kube-system":
                    docs.append(_with_expose(_with_image(doc, image), expose))
    return sorted(docs, key=lambda d: _ORDER.get(d["kind"], len(_ORDER)))


def _with_image(doc: dict[str, Any], image: str) -> dict[str, Any]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        container["image"] = image
    return doc


def _with_expose(doc: dict[str, Any], expose: str) -> dict[str, Any]:
    if doc["kind"] == "Service" and doc["metadata"]["name"] == GATEWAY_SERVICE:
        doc["spec"]["type"] = EXPOSE_TYPES[expose]
    return doc


def gateway_addresses(
    service: dict[str, Any], nodes: list[dict[str, Any]]
) -> tuple[GatewayAddress, ...]:
    """Pure: where peers reach the gateway, from its Service (and the nodes, for a NodePort);
    empty while there is no address yet (load balancer pending, node port not allocated).

    LoadBalancer: each ingress IP (or host name) with the Service port. NodePort: the node
    port on every Ready node's ExternalIP, or InternalIP where no node has an external one."""
    spec = service.get("spec") or {}
    port = next((p for p in spec.get("ports") or [] if p.get("name") == GATEWAY_PORT_NAME), None)
    if port is None:
        return ()
    if spec.get("type") == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        hosts = [i.get("ip") or i.get("hostname") for i in ingress]
        return tuple(GatewayAddress(host=h, port=port["port"]) for h in hosts if h)
    if spec.get("type") == "NodePort" and port.get("nodePort"):
        ready = [n for n in nodes if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (n.get("status") or {}).get("conditions") or [])]
        by_type: dict[str, list[str]] = {"ExternalIP": [], "InternalIP": []}
        for node in ready:
            for addr in (node.get("status") or {}).get("addresses") or []:
                if addr.get("type") in by_type and addr.get("address"):
                    by_type[addr["type"]].append(addr["address"])
        hosts = by_type["ExternalIP"] or by_type["InternalIP"]
        return tuple(GatewayAddress(host=h, port=port["nodePort"]) for h in sorted(set(hosts)))
    return ()


LEAF_SECRETS = (GATEWAY_TLS_SECRET, MIRROR_TLS_SECRET)
_LABELS = {MANAGED_BY_LABEL: MANAGED_BY, "app.kubernetes.io/part-of": "isthmus"}


def leaf_secret_placeholders() -> list[dict[str, Any]]:
    """Pure: the empty leaf Secrets the mirror patches its certificates into. Created once
    and never applied again: re-applying would blank a live certificate."""
    return [{
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": dict(_LABELS),
                     "annotations": {"isthmus.io/filled-by": "isthmus-mirror"}},
        "data": {"tls.crt": "", "tls.key": ""},
    } for name in LEAF_SECRETS]


def lease_placeholder() -> dict[str, Any]:
    """Pure: the mirror's leader Lease, holderless. Created here because RBAC cannot limit
    ``create`` by name; the mirror only gets and updates this one Lease."""
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": MIRROR_LEASE, "namespace": SYSTEM_NAMESPACE,
                     "labels": dict(_LABELS)},
        "spec": {},
    }


def placeholder_commands() -> str:
    """For the render path (``kubectl apply`` would blank live certificates on a re-run)."""
    secrets = [
        f"#   kubectl -n {SYSTEM_NAMESPACE} create secret generic {name} "
        "--type=kubernetes.io/tls --from-literal=tls.crt= --from-literal=tls.key="
        for name in LEAF_SECRETS]
    lease = json.dumps(lease_placeholder(), separators=(",", ":"))
    return "\n".join([*secrets, f"#   echo '{lease}' | kubectl create -f -"])


async def create_placeholders(api: Any) -> list[str]:
    """Create the leaf Secrets and the mirror's Lease where they do not exist yet (the
    mirror can fill or hold them, never create them); the names created."""
    from isthmus.kube.resources import LEASES, SECRETS

    created = []
    docs = [*((SECRETS, d) for d in leaf_secret_placeholders()), (LEASES, lease_placeholder())]
    for res, doc in docs:
        try:
            await api.create(res, doc, SYSTEM_NAMESPACE)
            created.append(doc["metadata"]["name"])
        except kube_errors.ConflictError:
            pass  # exists (perhaps with a live certificate or holder): leave it alone
    return created


def render(
    info: ClusterInfo | None, image: str, expose: str = "loadbalancer"
) -> list[dict[str, Any]]:
    """Pure: the documents for one cluster, in apply order (without the identity ConfigMap
    when ``info`` is None: its gateway address is not known yet)."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": SYSTEM_NAMESPACE, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
    }
    identity = [info.to_configmap()] if info is not None else []
    return [namespace, *load_crds(), *load_mcs_crds(), *identity,
            *component_manifests(image, expose)]


async def _discover_addresses(api: Any, timeout: float) -> tuple[GatewayAddress, ...]:
    from isthmus.kube.resources import NODES, SERVICES

    deadline = time.monotonic() + timeout
    while True:
        service = await api.get(SERVICES, GATEWAY_SERVICE, SYSTEM_NAMESPACE)
        nodes: list[dict[str, Any]] = []
        if (service.get("spec") or {}).get("type") == "NodePort":
            nodes = list((await api.list(NODES)).get("items") or [])
        found = gateway_addresses(service, nodes)
        if found:
            return found
        if time.monotonic() >= deadline:
            kind = (service.get("spec") or {}).get("type")
            hint = ("no load balancer gave it an address: use --expose nodeport, or give "
                    "--gateway-address" if kind == "LoadBalancer"
                    else "no Ready node has an address")
            raise ConfigError(f"the gateway Service {SYSTEM_NAMESPACE}/{GATEWAY_SERVICE} has no "
                              f"address for peers after {timeout:.0f} s: {hint}")
        await asyncio.sleep(2)


async def _apply(
    kubeconfig: str | None,
    context: str,
    docs: list[dict[str, Any]],
    make_info: Callable[[tuple[GatewayAddress, ...]], ClusterInfo] | None = None,
    address_timeout: float = 120.0,
) -> tuple[str, tuple[GatewayAddress, ...]]:
    """Apply ``docs``; without the identity ConfigMap among them, ``make_info(addresses)``
    builds it from the gateway Service's address, applied before the Deployments (the
    gateway reads its cluster name from it)."""
    from isthmus.kube.apply import apply, wait_crds_established
    from isthmus.kube.client import KubeApi

    api = await KubeApi.connect(kubeconfig, context)
    try:
        first = [d for d in docs if d["kind"] != "Deployment"]
        deployments = [d for d in docs if d["kind"] == "Deployment"]
        for doc in first:
            if is_shared_crd(doc):
                # A cluster's own MCS CRDs may be newer or belong to another
                # implementation: never overwrite them.
                await create_if_absent(api, doc)
            else:
                await apply(api, doc, field_manager=FIELD_MANAGER, force=True)
            if doc["kind"] == "CustomResourceDefinition":
                await wait_crds_established(api, [doc["metadata"]["name"]])
        addresses: tuple[GatewayAddress, ...] = ()
        if make_info is not None:
            addresses = await _discover_addresses(api, address_timeout)
            info = make_info(addresses)
            await apply(api, info.to_configmap(), field_manager=FIELD_MANAGER, force=True)
        for doc in deployments:
            await apply(api, doc, field_manager=FIELD_MANAGER, force=True)
        return await _finish(api), addresses
    finally:
        await api.close()


async def _finish(api: Any) -> str:
    """The leaf Secret and Lease placeholders, and CoreDNS's stub zones (``STUB_ZONES``)."""
    from isthmus.dns.coredns import with_global_forward
    from isthmus.kube.resources import CONFIGMAPS, SERVICES

    await create_placeholders(api)
    dns = await api.get(SERVICES, "isthmus-dns", SYSTEM_NAMESPACE)
    address = str(dns.get("spec", {}).get("clusterIP") or "")
    try:
        coredns = await api.get(CONFIGMAPS, "coredns", "kube-system")
    except kube_errors.NotFoundError:
        return (f"no kube-system/coredns ConfigMap: forward the `global` and `clusterset.local` "
            f"zones to {address}")
    corefile = coredns.get("data", {}).get("Corefile", "")
    updated = corefile
    for zone in STUB_ZONES:
        updated = with_global_forward(updated, [address], zone=zone)
    zones = " and ".join(STUB_ZONES)
    if updated != corefile:
        data = {**coredns["data"], "Corefile": updated}
        await api.replace(CONFIGMAPS, {**coredns, "data": data}, namespace="kube-system")
        return f"CoreDNS now forwards {zones} to {address}"
    return f"CoreDNS already forwards {zones} to {address}"


# The zones CoreDNS forwards to isthmus-dns: the .global names, and the Multi-Cluster
# Services names (<svc>.<ns>.svc.clusterset.local).
STUB_ZONES = ("global", "clusterset.local")


@click.command("install")
@click.option("--cluster", required=True, help="This cluster's name (an RFC 1123 label).")
@click.option("--trust-domain", required=True, help="The SPIFFE trust domain of all clusters.")
@click.option("--gateway-address", "gateway_addresses", multiple=True,
              metavar="HOST[:PORT]",
              help="Where peers reach this cluster's gateway (repeatable). Without it, "
                   "--context works it out from the gateway Service.")
@click.option("--expose", type=click.Choice(sorted(EXPOSE_TYPES)), default="loadbalancer",
              show_default=True,
              help="The gateway Service's type: nodeport where there is no load balancer (kind).")
@click.option("--address-timeout", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the gateway Service's address (with --context).")
@click.option("--region", default="", help="Locality region (peers prefer their own region).")
@click.option("--zone", default="", help="Locality zone.")
@click.option("--image", default=DEFAULT_IMAGE, show_default=True,
              help="The isthmus image. Build it with scripts/build-image.sh; on kind, load it "
                   "with `kind load docker-image isthmus:0.1.0 --name CLUSTER`.")
@click.option("--context", default=None, help="Apply to this context instead of printing.")
@click.option("--kubeconfig", default=None, metavar="PATH[:PATH...]", help="Kubeconfig file(s).")
def command(
    cluster: str,
    trust_domain: str,
    gateway_addresses: tuple[str, ...],
    expose: str,
    address_timeout: float,
    region: str,
    zone: str,
    image: str,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Render the manifests for one cluster (YAML on stdout), or apply them with --context.

    \b
    It creates, in namespace isthmus-system:
      - the Namespace, and the CRDs Link and GlobalService (cluster-wide);
      - the MCS CRDs ServiceExport and ServiceImport and the CRD ClusterProperty,
        only where the cluster lacks them (with --context; existing ones are kept);
      - for mirror, gateway and dns: a ServiceAccount, least-privilege RBAC,
        a Deployment and a Service;
      - the ConfigMap isthmus-cluster (name, trust domain, gateway addresses, locality);
      - with --context: the empty leaf Secrets isthmus-gateway-tls and
        isthmus-mirror-tls and the Lease isthmus-mirror (never overwritten), and a stub
        zone in CoreDNS's Corefile that forwards `global` and one that forwards
        `clusterset.local` to isthmus-dns.

    Without --gateway-address, the address peers use is worked out from the gateway
    Service once it exists (--expose nodeport on clusters with no load balancer, as kind).
    Trust material comes separately, after install: `isthmus trust cluster-ca` and
    `isthmus trust bundle`.
    """
    def make_info(addresses: tuple[GatewayAddress, ...]) -> ClusterInfo:
        try:
            return ClusterInfo(
                cluster=cluster,
                trust_domain=trust_domain,
                gateway_addresses=addresses,
                locality=Locality(region=region, zone=zone),
            )
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ConfigError(f"install: {exc}") from exc

    try:
        given = tuple(parse_address(a) for a in gateway_addresses)
    except ValueError as exc:
        raise ConfigError(f"install: {exc}") from exc
    if not given and context is None:
        raise ConfigError("install: give --gateway-address (or --context, to have it worked "
                          "out from the gateway Service)")
    # Validate everything else now, before anything is applied.
    info = make_info(given or (GatewayAddress(host="pending"),))
    docs = render(info if given else None, image, expose)
    if context is None:
        click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
        click.echo("# CoreDNS: add stub zones forwarding `global` and `clusterset.local` to the "
                   "isthmus-dns ClusterIP (or run again with --context to have it done).")
        click.echo("# The MCS CRDs (ServiceExport, ServiceImport, ClusterProperty) are among "
                   "the documents: leave them out if the cluster already has its own.")
        click.echo("# Leaf Secrets and the mirror's Lease: create them once (not with apply, "
                   "which would blank the certificates on a re-run); the mirror fills and "
                   "holds them:\n" + placeholder_commands())
        return
    try:
        message, found = asyncio.run(_apply(kubeconfig, context, docs,
                                            None if given else make_info, address_timeout))
    except kube_errors.KubeError as exc:
        raise ConfigError(f"install into {context!r}: {exc}") from exc
    where = ", ".join(f"{a.host}:{a.port}" for a in (given or found))
    click.echo(f"installed isthmus for cluster {cluster!r} into {context!r} (peers reach its "
               f"gateway at {where}); {message}")
