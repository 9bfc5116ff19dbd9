"""This cluster's isthmus identity: ConfigMap ``isthmus-system/isthmus-cluster``.

Written once per cluster (by ``isthmus install`` or the rig) and read by ``isthmus join`` and
the components: the cluster's name, trust domain, locality, and where its east-west gateway
can be reached by peers. Peers never see this ConfigMap; join copies what they need into the
``Link`` it creates in each of them.
"""

from __future__ import annotations

from typing import Any

import pydantic

from isthmus.api.models import DNS_LABEL, GatewayAddress, Locality
from isthmus.errors import ConfigError
from isthmus.labels import MANAGED_BY, MANAGED_BY_LABEL, SYSTEM_NAMESPACE
from isthmus.wellknown import GATEWAY_PORT, TrustDomain

CONFIGMAP_NAME = "isthmus-cluster"


class ClusterInfo(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    cluster: str = pydantic.Field(pattern=DNS_LABEL, max_length=63)
    trust_domain: TrustDomain
    gateway_addresses: tuple[GatewayAddress, ...] = pydantic.Field(min_length=1)
    locality: Locality = pydantic.Field(default_factory=Locality)

    def to_configmap(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CONFIGMAP_NAME,
                "namespace": SYSTEM_NAMESPACE,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            },
            "data": {
                "cluster": self.cluster,
                "trustDomain": self.trust_domain,
                "gatewayAddresses": ",".join(f"{a.host}:{a.port}" for a in self.gateway_addresses),
                "region": self.locality.region,
                "zone": self.locality.zone,
            },
        }

    @classmethod
    def from_configmap(cls, obj: dict[str, Any]) -> ClusterInfo:
        data = obj.get("data") or {}
        try:
            return cls(
                cluster=data.get("cluster", ""),
                trust_domain=data.get("trustDomain", ""),
                gateway_addresses=tuple(
                    parse_address(a) for a in str(data.get("gatewayAddresses", "")).split(",") if a
                ),
                locality=Locality(region=data.get("region", ""), zone=data.get("zone", "")),
            )
        except (pydantic.ValidationError, ValueError) as exc:
            raise ConfigError(
                f"ConfigMap {SYSTEM_NAMESPACE}/{CONFIGMAP_NAME} is not usable: {exc}"
            ) from exc


def parse_address(text: str) -> GatewayAddress:
    """``host:port``, ``[v6]:port`` or a bare host (the gateway port, 15443)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or str(GATEWAY_PORT)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, str(GATEWAY_PORT)
    if not port.isdigit():
        raise ValueError(f"gateway address {text!r}: port is not a number")
    return GatewayAddress(host=host, port=int(port))
