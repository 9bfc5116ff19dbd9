"""Gateway settings: flags ``--<field>`` or environment ``ISTHMUS_GATEWAY_<FIELD>``."""

from __future__ import annotations

from pathlib import Path

import pydantic
from pydantic_settings import SettingsConfigDict

from isthmus.settings import ComponentSettings
from isthmus.wellknown import CATALOG_PORT, GATEWAY_PORT


def parse_address(value: str, default_host: str = "0.0.0.0") -> tuple[str, int]:  # noqa: S104
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = default_host, value
    host = host.strip("[]") or default_host
    return host, int(port)


class GatewaySettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="ISTHMUS_GATEWAY_", extra="forbid", frozen=True)

    cluster: str = pydantic.Field(default="", description="This cluster's name (for logs).")
    region: str = pydantic.Field(default="", description="This cluster's region (locality).")
    zone: str = pydantic.Field(default="", description="This cluster's zone (locality).")
    inbound_address: str = pydantic.Field(
        default=f"0.0.0.0:{GATEWAY_PORT}", description="Inbound mTLS listener, host:port."
    )
    outbound_host: str = pydantic.Field(
        default="0.0.0.0",  # noqa: S104
        description="Address the per-service outbound listeners bind."
    )
    admin_address: str = pydantic.Field(
        default="0.0.0.0:15021", description="Admin HTTP listener host:port ('' disables)."
    )
    config_endpoint: bool = pydantic.Field(
        default=False,
        description="Serve /config on the admin port: the routing snapshot, with every "
        "backend address (off: the admin port is on the pod network).",
    )
    pod_ips: str = pydantic.Field(
        default="",
        description="This pod's addresses, comma-separated (the downward API's "
        "status.podIPs): never dialled as a backend.",
    )
    backend_deny_cidrs: str = pydantic.Field(
        default="",
        description="Comma-separated CIDRs never dialled as a backend, whatever an "
        "EndpointSlice says (node networks, metadata services, ...).",
    )
    backend_allow_loopback: bool = pydantic.Field(
        default=False,
        description="Dial loopback backend addresses. Only for a gateway whose backends "
        "run on the same host (tests, benchmarks); never in a cluster.",
    )
    catalog_address: str = pydantic.Field(
        default=f"isthmus-mirror.isthmus-system.svc:{CATALOG_PORT}",
        description="The local mirror's catalog server, reached by the 'catalog' target "
        "(the isthmus-mirror Service, whose one endpoint the leader writes).",
    )
    kubeconfig: Path | None = pydantic.Field(default=None, description="Kubeconfig path.")
    context: str | None = pydantic.Field(default=None, description="Kubeconfig context.")
    routes_file: Path | None = pydantic.Field(
        default=None,
        description="Read routes from this YAML file instead of the API server "
        "(keys: services, endpointSlices, links, globalServices).",
    )
    tls_secret: str = pydantic.Field(
        default="",
        description="Read TLS material from this Secret (tls.crt, tls.key, ca.crt) instead "
        "of files; polled for rotation.",
    )
    tls_secret_namespace: str = pydantic.Field(
        default="isthmus-system", description="Namespace of --tls-secret."
    )
    tls_cert: Path | None = pydantic.Field(default=None, description="Certificate chain PEM.")
    tls_key: Path | None = pydantic.Field(default=None, description="Private key PEM.")
    trust_bundle: Path | None = pydantic.Field(default=None, description="Trust bundle PEM.")
    tls_reload_interval: float = pydantic.Field(
        default=2.0, gt=0, description="Seconds between TLS material checks."
    )
    handshake_timeout: float = pydantic.Field(default=10.0, gt=0, description="Seconds.")
    idle_timeout: float = pydantic.Field(
        default=300.0, gt=0, description="Close a connection with no bytes moving this long."
    )
    connect_timeout: float = pydantic.Field(default=5.0, gt=0, description="Seconds per dial.")
    max_connections: int = pydantic.Field(
        default=10000, gt=0, description="Per direction and worker."
    )
    pool_min_idle: int = pydantic.Field(
        default=2, ge=0, description="Warm tunnels kept per peer gateway."
    )
    pool_max_idle: int = pydantic.Field(
        default=512, ge=0, description="Idle tunnels kept per peer gateway at most."
    )
    pool_idle_ttl: float = pydantic.Field(
        default=30.0, gt=0, description="Drop pooled tunnels idle this long (< peer idle)."
    )
    eject_after: int = pydantic.Field(
        default=3, gt=0, description="Consecutive failures that eject a peer gateway."
    )
    probe_interval: float = pydantic.Field(
        default=2.0, gt=0, description="Seconds between probes of an ejected peer (±20%)."
    )
    shutdown_delay: float = pydantic.Field(
        default=5.0, ge=0, le=60,
        description="On SIGTERM, keep accepting (not Ready) this long while endpoints update.",
    )
    drain_timeout: float = pydantic.Field(
        default=20.0, ge=0, description="Then wait this long for open streams."
    )
    workers: int = pydantic.Field(
        default=1, ge=1, le=64, description="Processes sharing the ports (SO_REUSEPORT)."
    )
    access_log: bool = pydantic.Field(default=True, description="One log line per connection.")
    uvloop: bool = pydantic.Field(default=True, description="Run on uvloop.")
