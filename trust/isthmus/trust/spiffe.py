"""SPIFFE IDs and the isthmus identity inside them: parsed and validated in one place.

The rules are those of the SPIFFE-ID specification: the scheme is ``spiffe`` in lower
case; the trust domain is made of ``[a-z0-9._-]`` only (no upper case, no port, no
userinfo); the path is ``/``-separated segments of ``[a-zA-Z0-9._-]``, none empty, none
``.`` or ``..``, no trailing slash, no percent-encoding, no query or fragment; the whole
URI is at most 2048 bytes. A workload ID (what an X.509-SVID carries) must have a
non-root path.

isthmus puts the cluster in the path::

    spiffe://<trust-domain>/cluster/<cluster>/ns/<namespace>/sa/<service-account>

and ``IsthmusIdentity`` is that shape, parsed. Every function here is pure; a rejection
raises ``SpiffeIdError`` with a named ``Reason``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isthmus.trust.errors import SpiffeIdError
from isthmus.trust.refusal import Reason
from isthmus.wellknown import MAX_TRUST_DOMAIN_BYTES, TRUST_DOMAIN_CHARS

SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
_TRUST_DOMAIN_CHARS = TRUST_DOMAIN_CHARS
_SEGMENT_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True, order=True)
class SpiffeId:
    """A valid SPIFFE ID: trust domain and path (``""`` for the trust domain's own ID)."""

    trust_domain: str
    path: str

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}{self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:]) if self.path else ()


def validate_trust_domain(name: str) -> str:
    """Return ``name`` if it is a valid trust domain name, else raise ``SpiffeIdError``."""
    if not name:
        raise SpiffeIdError(Reason.SPIFFE_EMPTY_TRUST_DOMAIN, "trust domain is empty")
    if not name.isascii():
        raise SpiffeIdError(Reason.SPIFFE_NOT_ASCII, f"trust domain {name!r} is not ASCII")
    if "@" in name:
        raise SpiffeIdError(Reason.SPIFFE_USERINFO, f"trust domain {name!r} carries userinfo")
    if ":" in name:
        raise SpiffeIdError(Reason.SPIFFE_PORT, f"trust domain {name!r} carries a port")
    if name != name.lower():
        raise SpiffeIdError(
            Reason.SPIFFE_UPPERCASE_TRUST_DOMAIN, f"trust domain {name!r} has upper-case letters"
        )
    if not _TRUST_DOMAIN_CHARS.fullmatch(name):
        raise SpiffeIdError(
            Reason.SPIFFE_BAD_TRUST_DOMAIN_CHAR,
            f"trust domain {name!r} may only hold a-z, 0-9, '.', '-' and '_'",
        )
    if len(name) > MAX_TRUST_DOMAIN_BYTES:
        raise SpiffeIdError(
            Reason.SPIFFE_TRUST_DOMAIN_TOO_LONG,
            f"trust domain is {len(name)} bytes, over {MAX_TRUST_DOMAIN_BYTES}",
        )
    return name


def _validate_path(path: str) -> None:
    if "%" in path:
        raise SpiffeIdError(Reason.SPIFFE_PERCENT_ENCODED, "path is percent-encoded")
    if path == "/":
        raise SpiffeIdError(Reason.SPIFFE_EMPTY_PATH, "path is the root '/'")
    if path.endswith("/"):
        raise SpiffeIdError(Reason.SPIFFE_TRAILING_SLASH, "path ends with '/'")
    for segment in path.split("/")[1:]:
        if segment == "":
            raise SpiffeIdError(Reason.SPIFFE_EMPTY_SEGMENT, "path has an empty segment '//'")
        if segment in (".", ".."):
            raise SpiffeIdError(Reason.SPIFFE_DOT_SEGMENT, f"path has a {segment!r} segment")
        if not _SEGMENT_CHARS.fullmatch(segment):
            raise SpiffeIdError(
                Reason.SPIFFE_BAD_PATH_CHAR,
                f"path segment {segment!r} may only hold a-z, A-Z, 0-9, '.', '-' and '_'",
            )


def parse_spiffe_id(text: str, *, require_path: bool = True) -> SpiffeId:
    """Parse and validate ``text`` as a SPIFFE ID.

    ``require_path`` (the default) is the rule for workload IDs and SVIDs: an empty or
    root path is refused. Pass ``False`` to accept a trust domain's own ID
    (``spiffe://example.org``), as carried by a root.
    """
    if not text:
        raise SpiffeIdError(Reason.SPIFFE_EMPTY, "SPIFFE ID is empty")
    if len(text.encode("utf-8")) > MAX_ID_BYTES:
        raise SpiffeIdError(Reason.SPIFFE_TOO_LONG, f"SPIFFE ID is over {MAX_ID_BYTES} bytes")
    if not text.isascii():
        raise SpiffeIdError(Reason.SPIFFE_NOT_ASCII, "SPIFFE ID is not ASCII")
    if not text.startswith(SCHEME_PREFIX):
        scheme = text.split(":", 1)[0] if ":" in text else "(none)"
        raise SpiffeIdError(Reason.SPIFFE_BAD_SCHEME, f"scheme is {scheme!r}, not 'spiffe://'")
    rest = text[len(SCHEME_PREFIX) :]
    if "?" in rest or "#" in rest:
        raise SpiffeIdError(Reason.SPIFFE_QUERY_OR_FRAGMENT, "SPIFFE ID has a query or fragment")
    slash = rest.find("/")
    trust_domain, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    validate_trust_domain(trust_domain)
    if path == "" and require_path:
        raise SpiffeIdError(Reason.SPIFFE_EMPTY_PATH, "SPIFFE ID has no path")
    if path:
        _validate_path(path)
    return SpiffeId(trust_domain, path)


def _dns_label(kind: str, value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise SpiffeIdError(Reason.BAD_NAME, f"{kind} {value!r} is not a DNS-1123 label")
    return value


def _dns_subdomain(kind: str, value: str) -> str:
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(part) for part in value.split(".")):
        raise SpiffeIdError(Reason.BAD_NAME, f"{kind} {value!r} is not a DNS-1123 subdomain")
    return value


@dataclass(frozen=True, slots=True, order=True)
class IsthmusIdentity:
    """A workload identity as isthmus uses it: which cluster, namespace and account."""

    trust_domain: str
    cluster: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        _dns_label("cluster", self.cluster)
        _dns_label("namespace", self.namespace)
        _dns_subdomain("service account", self.service_account)

    @property
    def spiffe_id(self) -> SpiffeId:
        return SpiffeId(
            self.trust_domain,
            f"/cluster/{self.cluster}/ns/{self.namespace}/sa/{self.service_account}",
        )

    @property
    def uri(self) -> str:
        return str(self.spiffe_id)

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def from_spiffe_id(cls, spiffe_id: SpiffeId) -> IsthmusIdentity:
        parts = spiffe_id.segments
        if len(parts) != 6 or parts[0] != "cluster" or parts[2] != "ns" or parts[4] != "sa":
            raise SpiffeIdError(
                Reason.NOT_ISTHMUS_ID,
                f"{spiffe_id} is not spiffe://<domain>/cluster/<c>/ns/<n>/sa/<s>",
            )
        return cls(spiffe_id.trust_domain, parts[1], parts[3], parts[5])

    @classmethod
    def parse(cls, text: str) -> IsthmusIdentity:
        return cls.from_spiffe_id(parse_spiffe_id(text))


def cluster_ca_id(trust_domain: str, cluster: str) -> SpiffeId:
    """The ID an intermediate carries: the trust domain plus ``/cluster/<cluster>``."""
    validate_trust_domain(trust_domain)
    return SpiffeId(trust_domain, f"/cluster/{_dns_label('cluster', cluster)}")


def cluster_of_ca_id(spiffe_id: SpiffeId) -> str | None:
    """The cluster named by an intermediate's ID, or None if it is not a cluster CA ID."""
    parts = spiffe_id.segments
    if len(parts) == 2 and parts[0] == "cluster":
        return parts[1]
    return None
