"""The local rig: real control planes for several "clusters", set up and linked by isthmus.

Today it does, for each cluster: start etcd + kube-apiserver (RBAC on) +
kube-controller-manager, install the isthmus CRDs, create ``isthmus-system``, give the
cluster an intermediate CA under one shared root and a trust bundle, record its identity
(ConfigMap ``isthmus-cluster``), and then ``isthmus join`` links every pair. It prints each
cluster's kubeconfig and the Links, then tears everything down (or keeps it with --keep).

Usage: python multicluster-e2e/rig.py [--clusters west,east] [--keep] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from isthmus.api.crds import install_crds
from isthmus.api.models import GatewayAddress, Locality
from isthmus.clusterinfo import ClusterInfo
from isthmus.devcluster import ControlPlane
from isthmus.kube.apply import apply, with_retries
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import LINKS, NAMESPACES
from isthmus.logging import configure
from isthmus.trust import (
    TrustBundle,
    bundle_configmap,
    cluster_ca_secret,
    create_cluster_ca,
    create_root,
)

TRUST_DOMAIN = "rig.isthmus.test"


async def prepare(cp: ControlPlane, name: str, index: int, root, bundle: TrustBundle) -> None:  # type: ignore[no-untyped-def]
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await install_crds(api)
        await with_retries(lambda: api.create(NAMESPACES, {"metadata": {"name": "isthmus-system"}}))
        ca = create_cluster_ca(root, name)
        await apply(api, cluster_ca_secret(ca, root.cert_pem()), force=True)
        await apply(api, bundle_configmap(bundle), force=True)
        info = ClusterInfo(
            cluster=name,
            trust_domain=TRUST_DOMAIN,
            # Where the gateway will listen once the rig runs it (documented in the README).
            gateway_addresses=(GatewayAddress(host=f"127.0.0.{10 + index}", port=15443),),
            locality=Locality(region="rig", zone=f"zone-{index}"),
        )
        await apply(api, info.to_configmap(), force=True)
    finally:
        await api.close()


async def show_links(cp: ControlPlane) -> list[str]:
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        answer = await with_retries(lambda: api.list(LINKS))
        return sorted(i["metadata"]["name"] for i in answer["items"])
    finally:
        await api.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", default="west,east")
    parser.add_argument("--keep", action="store_true", help="keep clusters running until Ctrl-C")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    configure("warning")
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isthmus-rig-"))
    planes: list[ControlPlane] = []
    try:
        root = create_root(TRUST_DOMAIN)
        bundle = TrustBundle.of([root.cert])
        for i, name in enumerate(names):
            print(f"[rig] starting control plane {name!r} "
                  "(etcd, kube-apiserver, kube-controller-manager)")
            cp = ControlPlane(name, workdir=workdir / name, service_cidr=f"10.{96 + i}.0.0/16",
                              keep_workdir=args.keep)
            planes.append(cp.start())
            asyncio.run(prepare(cp, name, i, root, bundle))
            print(f"[rig]   {name}: {cp.server}  kubeconfig={cp.kubeconfig}")
        kubeconfig = ":".join(str(cp.kubeconfig) for cp in planes)
        cmd = [sys.executable, "-m", "isthmus", "join", "--kubeconfig", kubeconfig]
        for cp in planes:
            cmd += ["--context", cp.context]
        print("[rig] isthmus join " + " ".join(f"--context {cp.context}" for cp in planes))
        subprocess.run(cmd, check=True)
        for cp in planes:
            print(f"[rig]   Links in {cp.name}: {', '.join(asyncio.run(show_links(cp)))}")
        print(f"[rig] export KUBECONFIG={kubeconfig}")
        if args.keep:
            print("[rig] running; Ctrl-C to stop")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        for cp in planes:
            cp.stop()


if __name__ == "__main__":
    sys.exit(main())
