"""The rig's network: one Linux network namespace per cluster, joined by a "WAN" namespace.

    host ── veth ──┐
                   ├─ br0 in netns <prefix>-wan   (10.250.0.0/24: host .1, cluster i .10+i)
    <prefix>-west ─┤      each cluster's eth0 has its WAN address; its API server and
    <prefix>-east ─┘      east-west gateway listen there. Pod addresses are /32s on the
                          namespace's loopback (10.(100+i).0.0/16): this kernel has no
                          dummy-interface module, and a "pod" here is a process.

Everything here is created by the rig and removed by ``destroy()``; no address outside these
namespaces is ever used. Needs root.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field

from isthmus.devcluster.controlplane import ControlPlaneError

WAN_CIDR = ipaddress.IPv4Network("10.250.0.0/24")


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")


def _ns(netns: str, *argv: str) -> None:
    _run("ip", "netns", "exec", netns, *argv)


@dataclass
class ClusterNet:
    name: str
    index: int
    netns: str
    wan_ip: str
    pod_cidr: str
    _next_pod: int = 10

    def add_pod_ip(self) -> str:
        """A fresh address on the cluster's pod interface (a "pod" is a process bound to it)."""
        net = ipaddress.ip_network(self.pod_cidr)
        address = str(net.network_address + self._next_pod)
        self._next_pod += 1
        _ns(self.netns, "ip", "addr", "add", f"{address}/32", "dev", "lo")
        return address

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]


@dataclass
class RigNetwork:
    prefix: str = "isthmus"
    # Two rigs (the demo and the e2e test) may run at once: give each its own WAN.
    wan_cidr: ipaddress.IPv4Network = WAN_CIDR
    clusters: dict[str, ClusterNet] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)  # the clusters of the last create()

    @property
    def host_ip(self) -> str:
        return str(self.wan_cidr.network_address + 1)

    @property
    def wan_ns(self) -> str:
        return f"{self.prefix}-wan"

    def create(self, names: list[str]) -> dict[str, ClusterNet]:
        self._names = list(names)
        self.destroy()  # leftovers of a run that was killed
        try:
            _run("ip", "netns", "add", self.wan_ns)
            _ns(self.wan_ns, "ip", "link", "set", "lo", "up")
            _ns(self.wan_ns, "ip", "link", "add", "br0", "type", "bridge")
            _ns(self.wan_ns, "ip", "link", "set", "br0", "up")
            host_if = f"{self.prefix[:8]}-h"
            _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "h0",
                 "netns", self.wan_ns)
            _run("ip", "addr", "add", f"{self.host_ip}/{self.wan_cidr.prefixlen}", "dev", host_if)
            _run("ip", "link", "set", host_if, "up")
            _ns(self.wan_ns, "ip", "link", "set", "h0", "master", "br0", "up")
            for i, name in enumerate(names):
                self.clusters[name] = self._add_cluster(name, i)
        except BaseException:
            self.destroy()
            raise
        return self.clusters

    def _add_cluster(self, name: str, index: int) -> ClusterNet:
        netns = f"{self.prefix}-{name}"
        wan_ip = str(self.wan_cidr.network_address + 10 + index)
        _run("ip", "netns", "add", netns)
        _ns(netns, "ip", "link", "set", "lo", "up")
        _ns(self.wan_ns, "ip", "link", "add", f"c{index}", "type", "veth", "peer", "name",
            "eth0", "netns", netns)
        _ns(self.wan_ns, "ip", "link", "set", f"c{index}", "master", "br0", "up")
        _ns(netns, "ip", "addr", "add", f"{wan_ip}/{self.wan_cidr.prefixlen}", "dev", "eth0")
        _ns(netns, "ip", "link", "set", "eth0", "up")
        # Service VIPs need a route before kube-proxy's DNAT can apply. An on-link default
        # (no gateway) keeps everything on the rig's own bridge: nothing leaves the rig.
        _ns(netns, "ip", "route", "add", "default", "dev", "eth0")
        pod_cidr = f"10.{100 + index}.0.0/16"
        return ClusterNet(name, index, netns, wan_ip, pod_cidr)

    def destroy(self) -> None:
        """Remove the namespaces and link of this rig (idempotent). Only its own names: other
        namespaces that share the prefix (another rig's, or a kind engine's) are left alone."""
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                 check=False).stdout
        ours = {self.wan_ns, *(f"{self.prefix}-{name}" for name in self._names)}
        for line in listing.splitlines():
            ns = line.split()[0] if line.split() else ""
            if ns in ours:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", f"{self.prefix[:8]}-h"], capture_output=True,
                       check=False)
        self.clusters.clear()
