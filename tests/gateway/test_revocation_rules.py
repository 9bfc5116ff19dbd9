"""The pure revocation decisions as tables: which change cuts which stream, and which
changes leave it alone."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from gw_helpers import Pki, endpoint_slice, link, service, snapshot

from isthmus.gateway.revocation import OpenStream, peer_revoked, stream_revoked
from isthmus.gateway.snapshot import Snapshot
from isthmus.gateway.wire import Target
from isthmus.trust import PeerIdentity, TrustBundle, create_root, verify_peer

PKI = Pki()
NOW = dt.datetime.now(dt.UTC)
_DER = Encoding.DER


def _peer(cluster: str = "west", sa: str = "isthmus-gateway") -> PeerIdentity:
    leaf = PKI.leaf(cluster, sa=sa)
    chain = [leaf.cert.public_bytes(_DER), PKI.cas[cluster].cert.public_bytes(_DER)]
    verdict = verify_peer(PKI.bundle, chain, NOW)
    assert isinstance(verdict, PeerIdentity)
    return verdict


WEST = _peer()
MIRROR = _peer(sa="isthmus-mirror")
OTHER_ROOT = create_root(PKI.td)


def routes(*, links: tuple[str, ...] = ("west",), export: bool = True,
           export_to: str | None = None, port: int = 80,
           backends: tuple[str, ...] = ("10.0.0.1",), extra: bool = False) -> Snapshot:
    services = [service("shop", "users", port, export=export, export_to=export_to)]
    slices = [endpoint_slice("shop", "users", [(b, 8080) for b in backends])]
    if extra:
        services.append(service("shop", "orders", 80))
        slices.append(endpoint_slice("shop", "orders", [("10.0.0.9", 8080)]))
    return snapshot(services=services, slices=slices, links=[link(c) for c in links])


USERS = Target("users", "shop", 80)


@pytest.mark.parametrize(
    ("snap", "bundle", "now", "stream", "expected"),
    [
        pytest.param(routes(), PKI.bundle, NOW, OpenStream(WEST, USERS), None,
                     id="nothing-changed"),
        pytest.param(routes(backends=("10.0.0.2",)), PKI.bundle, NOW,
                     OpenStream(WEST, USERS), None, id="backends-changed"),
        pytest.param(routes(backends=()), PKI.bundle, NOW, OpenStream(WEST, USERS), None,
                     id="no-ready-backend-left"),
        pytest.param(routes(extra=True), PKI.bundle, NOW, OpenStream(WEST, USERS), None,
                     id="other-service-added"),
        pytest.param(routes(links=("west", "central")), PKI.bundle, NOW,
                     OpenStream(WEST, USERS), None, id="other-link-added"),
        pytest.param(routes(), TrustBundle.of([PKI.root.cert, OTHER_ROOT.cert]), NOW,
                     OpenStream(WEST, USERS), None, id="root-added"),
        pytest.param(routes(export_to="west,central"), PKI.bundle, NOW,
                     OpenStream(WEST, USERS), None, id="export-to-includes-caller"),
        pytest.param(routes(links=("central",)), PKI.bundle, NOW, OpenStream(WEST, USERS),
                     "link_removed", id="link-removed"),
        pytest.param(routes(links=()), PKI.bundle, NOW, OpenStream(MIRROR, Target("catalog")),
                     "link_removed", id="link-removed-catalog"),
        pytest.param(snapshot(services=[service("shop", "users", 80)],
                              links=[link("west", td="other.org")]),
                     PKI.bundle, NOW, OpenStream(WEST, USERS), "link_removed",
                     id="link-now-other-trust-domain"),
        pytest.param(routes(), TrustBundle.of([OTHER_ROOT.cert]), NOW,
                     OpenStream(WEST, USERS), "root_removed", id="root-removed"),
        pytest.param(routes(), PKI.bundle, WEST.not_after + dt.timedelta(seconds=1),
                     OpenStream(WEST, USERS), "peer_expired", id="peer-expired"),
        pytest.param(routes(), PKI.bundle, WEST.not_after, OpenStream(WEST, USERS), None,
                     id="expiry-second-still-valid"),
        pytest.param(routes(export=False), PKI.bundle, NOW, OpenStream(WEST, USERS),
                     "unexported", id="unexported"),
        pytest.param(routes(port=81), PKI.bundle, NOW, OpenStream(WEST, USERS),
                     "unexported", id="port-removed"),
        pytest.param(routes(export_to="central"), PKI.bundle, NOW, OpenStream(WEST, USERS),
                     "export_to_excludes_caller", id="export-to-narrowed"),
        pytest.param(routes(export_to=""), PKI.bundle, NOW, OpenStream(WEST, USERS),
                     "export_to_excludes_caller", id="export-to-emptied"),
        pytest.param(routes(export=False), PKI.bundle, NOW,
                     OpenStream(MIRROR, Target("catalog")), None, id="catalog-unaffected"),
        pytest.param(routes(links=()), TrustBundle.of([OTHER_ROOT.cert]), NOW,
                     OpenStream(WEST, USERS), "root_removed", id="root-before-link"),
    ],
)
def test_stream_revoked(snap: Snapshot, bundle: TrustBundle, now: dt.datetime,
                        stream: OpenStream, expected: str | None) -> None:
    assert stream_revoked(snap, bundle, now, stream) == expected


def test_peer_revoked_uses_the_earliest_end_of_the_chain() -> None:
    assert WEST.not_after == min(c.not_valid_after_utc for c in WEST.chain)
    assert peer_revoked(WEST, PKI.bundle, NOW) is None
    assert peer_revoked(WEST, PKI.bundle, WEST.not_after + dt.timedelta(microseconds=1)) == \
        "peer_expired"
