"""Pure: the boundary where a peer's catalog entries become ``CatalogEntry`` values.

A peer's catalog decides what this cluster's mirror writes, and the peer may be careless or
hostile, so each entry is checked here, once, as strictly as the API server would check the
objects made from it (docs/mirror-import-policy.md):

- namespace: an RFC 1123 label; service name: an RFC 1035 label (a Service's rule);
- ports: 1 to ``MAX_PORTS`` (the GlobalService's ``maxItems``), numbers 1-65535 and unique,
  names empty or IANA-service-name-like labels of at most 15 characters (the GlobalService
  port name rule), ``appProtocol`` empty or a Kubernetes qualified name;
- weight 0-10000 when present; ready endpoints at most ``MAX_READY_ENDPOINTS``; version and
  change time non-negative;
- pods (a headless export's hostnames): only on a headless entry, at most ``MAX_PODS``,
  each an RFC 1123 label, no repeats (sorted here: their order on the wire means nothing).

An entry that fails is rejected alone, with a reason; the rest of its message is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from isthmus.labels import DEFAULT_WEIGHT, MAX_WEIGHT
from isthmus.mirror.model import CatalogEntry, PortSpec, ServiceKey

MAX_PORTS = 64  # GlobalService spec.ports maxItems
MAX_READY_ENDPOINTS = 1_000_000
MAX_PODS = 1024  # named pods of one headless entry; the importer's own limit is lower
DNS_1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
PORT_NAME = r"^([a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?)?$"
# Kubernetes' qualified name: an optional DNS subdomain prefix and "/", then a name.
QUALIFIED_NAME = (r"^(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
                  r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_QUALIFIED = re.compile(QUALIFIED_NAME)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class WirePort(_Strict):
    port: Annotated[int, Field(ge=1, le=65535)]
    name: Annotated[str, Field(pattern=PORT_NAME, max_length=15)] = ""
    app_protocol: Annotated[str, Field(max_length=316)] = ""

    @field_validator("app_protocol")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if value:
            prefix, _, name = value.rpartition("/")
            if len(prefix) > 253 or len(name) > 63 or not _QUALIFIED.match(value):
                raise ValueError("appProtocol is not a qualified name")
        return value


class WireService(_Strict):
    namespace: Annotated[str, Field(pattern=DNS_1123_LABEL, max_length=63)]
    name: Annotated[str, Field(pattern=DNS_1035_LABEL, max_length=63)]
    ports: Annotated[list[WirePort], Field(min_length=1, max_length=MAX_PORTS)]
    ready_endpoints: Annotated[int, Field(ge=0, le=MAX_READY_ENDPOINTS)]
    version: Annotated[int, Field(ge=0)] = 0
    changed_at_ms: Annotated[int, Field(ge=0)] = 0
    weight: Annotated[int, Field(ge=0, le=MAX_WEIGHT)] = DEFAULT_WEIGHT
    headless: bool = False
    pods: Annotated[list[Annotated[str, Field(pattern=DNS_1123_LABEL, max_length=63)]],
                    Field(max_length=MAX_PODS)] = []

    @field_validator("pods")
    @classmethod
    def _unique_pods(cls, pods: list[str]) -> list[str]:
        if len(set(pods)) != len(pods):
            raise ValueError("pod hostnames repeat")
        return pods

    @pydantic.model_validator(mode="after")
    def _pods_only_if_headless(self) -> WireService:
        if self.pods and not self.headless:
            raise ValueError("pods on a service that is not headless")
        return self
    exported_at_ms: Annotated[int, Field(ge=0)] = 0

    @field_validator("ports")
    @classmethod
    def _unique(cls, ports: list[WirePort]) -> list[WirePort]:
        if len({p.port for p in ports}) != len(ports):
            raise ValueError("port numbers repeat")
        names = [p.name for p in ports if p.name]
        if len(set(names)) != len(names):
            raise ValueError("port names repeat")
        return ports


_KEY = pydantic.TypeAdapter(
    tuple[Annotated[str, Field(pattern=DNS_1123_LABEL, max_length=63)],
          Annotated[str, Field(pattern=DNS_1035_LABEL, max_length=63)]])


@dataclass(frozen=True, slots=True)
class Rejected:
    """One catalog entry not imported: what it claimed to be (shortened) and why."""

    namespace: str
    name: str
    reason: str


def _printable(value: str) -> str:
    """A wire string as it may appear in a log line, a condition or an Event."""
    return repr(value[:70])[1:-1]


def _reason(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}"[:200]


def entry_from_fields(fields: dict[str, Any]) -> CatalogEntry | Rejected:
    """A ``CatalogEntry`` from one service's fields (as on the wire), or why not."""
    try:
        svc = WireService.model_validate(fields)
    except pydantic.ValidationError as exc:
        return Rejected(_printable(str(fields.get("namespace", ""))),
                        _printable(str(fields.get("name", ""))), _reason(exc))
    return CatalogEntry(
        namespace=svc.namespace, name=svc.name,
        ports=tuple(sorted(PortSpec(p.port, p.name, p.app_protocol) for p in svc.ports)),
        ready_endpoints=svc.ready_endpoints, version=svc.version,
        changed_at_ms=svc.changed_at_ms, weight=svc.weight,
        headless=svc.headless, pods=tuple(sorted(svc.pods)),
        exported_at_ms=svc.exported_at_ms,
    )


def entry_from_message(msg: Any) -> CatalogEntry | Rejected:
    """Validate one ``isthmus.mirror.v1.Service`` message."""
    if len(msg.ports) > MAX_PORTS:  # not even looked at, one by one
        return Rejected(_printable(msg.namespace), _printable(msg.name),
                        f"ports: {len(msg.ports)} ports, at most {MAX_PORTS} allowed")
    if len(msg.pods) > MAX_PODS:
        return Rejected(_printable(msg.namespace), _printable(msg.name),
                        f"pods: {len(msg.pods)} pods, at most {MAX_PODS} allowed")
    fields: dict[str, Any] = {
        "namespace": msg.namespace, "name": msg.name,
        "ports": [{"port": p.port, "name": p.name, "app_protocol": p.app_protocol}
                  for p in msg.ports],
        "ready_endpoints": msg.ready_endpoints, "version": msg.version,
        "changed_at_ms": msg.changed_at_ms, "exported_at_ms": msg.exported_at_ms,
        "headless": msg.headless, "pods": list(msg.pods),
    }
    if msg.HasField("weight"):
        fields["weight"] = msg.weight
    return entry_from_fields(fields)


def key_from_message(msg: Any) -> ServiceKey | None:
    """A removed key from the wire, or None when it cannot name a valid service."""
    try:
        ns, name = _KEY.validate_python((msg.namespace, msg.name))
    except pydantic.ValidationError:
        return None
    return (ns, name)
