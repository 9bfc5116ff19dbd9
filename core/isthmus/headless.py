"""Pure: the named pods of an exported headless Service (``clusterIP: None``).

A peer reaches one exact pod of a headless export by its hostname (the EndpointSlice
endpoint's ``hostname``, which a StatefulSet's pods carry). This module decides, from the
Service's EndpointSlices, which ready endpoints get a per-pod name, and why the others do
not (docs/headless.md, docs/decisions/headless-per-pod-names.md):

- only ready, not terminating endpoints count (the rule ``exports`` uses);
- an endpoint without ``hostname`` gets no name (counted in ``without_hostname``);
- a hostname that is not an RFC 1123 label is refused;
- a hostname that two ready endpoints with different addresses claim is refused, for both
  (which one a reader sees first is not stable); the same endpoint listed in two slices,
  as the EndpointSlice controller briefly does while it moves endpoints, is one pod;
- at most ``limit`` pods, in hostname order; the rest are refused.

The first address of an endpoint is its pod's (the API's rule: consumers use the first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

JsonObj = Mapping[str, Any]

DEFAULT_MAX_PODS = 256
HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class HeadlessPod(BaseModel):
    """One ready pod of a headless export, by its hostname."""

    model_config = ConfigDict(frozen=True)

    hostname: str
    address: str
    ports: dict[int, int] = Field(default_factory=dict)  # service port -> endpoint port


class HeadlessPods(BaseModel):
    """The named pods of one headless export and why the other endpoints are not named."""

    model_config = ConfigDict(frozen=True)

    pods: tuple[HeadlessPod, ...] = ()
    without_hostname: int = 0
    refused: tuple[str, ...] = ()  # one sentence per refused hostname, sorted

    def find(self, hostname: str) -> HeadlessPod | None:
        for pod in self.pods:
            if pod.hostname == hostname:
                return pod
        return None


def is_headless(service: JsonObj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 70 else text[:70] + "...")


def headless_pods(
    slices: Iterable[tuple[Mapping[int, int], JsonObj]], limit: int = DEFAULT_MAX_PODS
) -> HeadlessPods:
    """The named pods among ``slices`` (each with its service port -> endpoint port map,
    and its ready endpoints already filtered by the caller)."""
    claims: dict[str, dict[str, dict[int, int]]] = {}  # hostname -> address -> ports
    without = 0
    refused: list[str] = []
    for port_map, endpoint in slices:
        addresses = endpoint.get("addresses") or []
        if not addresses or not isinstance(addresses[0], str):
            continue
        hostname = endpoint.get("hostname")
        if hostname is None or hostname == "":
            without += 1
            continue
        if not isinstance(hostname, str) or not HOSTNAME.match(hostname):
            refused.append(f"hostname {_shown(str(hostname))} is not a DNS label")
            continue
        claims.setdefault(hostname, {}).setdefault(addresses[0], {}).update(port_map)
    named: list[HeadlessPod] = []
    for hostname in sorted(claims):
        by_address = claims[hostname]
        if len(by_address) > 1:
            refused.append(f"hostname {hostname!r} is claimed by {len(by_address)} "
                           f"endpoints ({', '.join(sorted(by_address))})")
            continue
        ((address, ports),) = by_address.items()
        named.append(HeadlessPod(hostname=hostname, address=address, ports=ports))
    for pod in named[limit:]:
        refused.append(f"hostname {pod.hostname!r} is over the limit of {limit} pods "
                       f"per headless service")
    return HeadlessPods(pods=tuple(named[:limit]), without_hostname=without,
                        refused=tuple(sorted(refused)))
