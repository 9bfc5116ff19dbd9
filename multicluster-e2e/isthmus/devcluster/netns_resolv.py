"""Local rig: make a network namespace resolve through its cluster's responder.

``ip netns exec <name>`` bind-mounts ``/etc/netns/<name>/resolv.conf`` over
``/etc/resolv.conf``, so plain glibc lookups (``getent hosts``, ``socket.getaddrinfo``) in
that namespace ask our responder. glibc only speaks to port 53, so the responder listens on
port 53 of an address reachable inside the namespace (its loopback works).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

NETNS_ETC = Path("/etc/netns")


def resolv_conf_text(nameserver: str, *, search: tuple[str, ...] = ()) -> str:
    ipaddress.ip_address(nameserver)  # glibc silently ignores a name here
    lines = [
        "# Written by isthmus: this namespace resolves through its isthmus-dns responder.",
        f"nameserver {nameserver}",
    ]
    if search:
        lines.append("search " + " ".join(search))
    # One quick retry: a responder on loopback either answers at once or is not running.
    lines.append("options timeout:1 attempts:2")
    return "\n".join(lines) + "\n"


def write_netns_resolv_conf(
    netns: str, nameserver: str, *, search: tuple[str, ...] = (), root: Path = NETNS_ETC
) -> Path:
    """Write ``<root>/<netns>/resolv.conf``; returns its path. Atomic (rename)."""
    if not netns or "/" in netns or netns in (".", ".."):
        raise ValueError(f"not a namespace name: {netns!r}")
    folder = root / netns
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "resolv.conf"
    temporary = folder / ".resolv.conf.tmp"
    temporary.write_text(resolv_conf_text(nameserver, search=search), encoding="ascii")
    temporary.replace(target)
    return target
