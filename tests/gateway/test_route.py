"""Pure parts: target normalization, inbound authorization/routing, peer ordering."""

from __future__ import annotations

import pytest
from gw_helpers import TD, endpoint_slice, gs_endpoint, link, service, snapshot

from isthmus.gateway.route import Dial, Refused, order_peers, route_inbound
from isthmus.gateway.snapshot import build_snapshot
from isthmus.gateway.wire import BadTarget, Status, Target, normalize_target
from isthmus.trust import IsthmusIdentity


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"users.shop:80", Target("users", "shop", 80), id="plain"),
        pytest.param(b"USERS.Shop:80", Target("users", "shop", 80), id="case"),
        pytest.param(b"users.shop.:80", Target("users", "shop", 80), id="trailing-dot"),
        pytest.param(b"Catalog", Target("catalog"), id="catalog"),
        pytest.param(b"users.shop", BadTarget("malformed"), id="no-port"),
        pytest.param(b"users:80", BadTarget("malformed"), id="no-namespace"),
        pytest.param(b"db-0.db.shop:80", Target("db", "shop", 80, "db-0"), id="pod"),
        pytest.param(b"DB-0.db.shop.:80", Target("db", "shop", 80, "db-0"), id="pod-case-dot"),
        pytest.param(b"a.b.c.d:80", BadTarget("malformed"), id="four-labels"),
        pytest.param(b"db_0.db.shop:80", BadTarget("malformed"), id="pod-underscore"),
        pytest.param(b"users.shop:0", BadTarget("malformed"), id="port-0"),
        pytest.param(b"users.shop:65536", BadTarget("malformed"), id="port-high"),
        pytest.param(b"users.shop:80\x00", BadTarget("malformed"), id="nul"),
        pytest.param(b"-users.shop:80", BadTarget("malformed"), id="label-dash"),
        pytest.param(b"", BadTarget("malformed"), id="empty"),
        pytest.param("us\u00e9rs.shop:80".encode(), BadTarget("non_ascii"), id="non-ascii"),
        pytest.param(b"a" * 256, BadTarget("too_long"), id="too-long"),
        pytest.param(b"users.shop..:80", BadTarget("malformed"), id="two-dots"),
        pytest.param(b"users.shop:80\n", BadTarget("malformed"), id="trailing-newline"),
        pytest.param(b"users.shop:80\r\n", BadTarget("malformed"), id="trailing-crlf"),
        pytest.param(b"users.shop.:80\n", BadTarget("malformed"), id="trailing-dot-newline"),
        pytest.param(b"catalog\n", BadTarget("malformed"), id="catalog-newline"),
        pytest.param(b"\ncatalog", BadTarget("malformed"), id="leading-newline"),
        pytest.param(b"users.shop:8\t0", BadTarget("malformed"), id="tab"),
        pytest.param(b"users\x1b.shop:80", BadTarget("malformed"), id="escape"),
        pytest.param(b"users.shop:80\x7f", BadTarget("malformed"), id="del"),
        pytest.param(b"users.shop:80 ", BadTarget("malformed"), id="trailing-space"),
    ],
)
def test_normalize_target(raw: bytes, expected: object) -> None:
    assert normalize_target(raw) == expected


def ident(cluster: str = "west", ns: str = "isthmus-system", sa: str = "isthmus-gateway",
          td: str = TD) -> IsthmusIdentity:
    return IsthmusIdentity(td, cluster, ns, sa)


SNAP = snapshot(
    services=[
        service("shop", "users", 80),
        service("shop", "orders", 80, export_to="central"),
        service("shop", "hidden", 80, export=False),
        service("shop", "empty", 80),
        service("shop", "mirrored", 80, mirror=True),
    ],
    slices=[
        endpoint_slice("shop", "users", [("10.0.0.1", 8080), ("10.0.0.2", 8080)]),
        endpoint_slice("shop", "orders", [("10.0.0.3", 8080)]),
        endpoint_slice("shop", "hidden", [("10.0.0.4", 8080)]),
        endpoint_slice("shop", "empty", [("10.0.0.5", 8080)], ready=False),
        endpoint_slice("shop", "mirrored", [("10.0.0.6", 8080)]),
    ],
    links=[link("west"), link("central"), link("other", td="other.org")],
    catalog=("127.0.0.1", 15080),
)


@pytest.mark.parametrize(
    ("caller", "raw", "status", "reason"),
    [
        pytest.param(ident("east"), b"users.shop:80", Status.UNLINKED, "cluster_not_linked",
                     id="unlinked"),
        pytest.param(ident("other"), b"users.shop:80", Status.UNLINKED, "trust_domain_mismatch",
                     id="other-trust-domain"),
        pytest.param(ident(), b"nope.shop:80", Status.UNKNOWN_TARGET, "unknown_service",
                     id="unknown"),
        pytest.param(ident(), b"hidden.shop:80", Status.UNKNOWN_TARGET, "not_exported",
                     id="not-exported"),
        pytest.param(ident(), b"mirrored.shop:80", Status.UNKNOWN_TARGET, "not_exported",
                     id="mirror-never-exported"),
        pytest.param(ident(), b"users.shop:81", Status.UNKNOWN_TARGET, "unknown_port",
                     id="unknown-port"),
        pytest.param(ident(), b"orders.shop:80", Status.FORBIDDEN, "export_to_excludes_caller",
                     id="export-to"),
        pytest.param(ident(), b"empty.shop:80", Status.NO_BACKEND, "no_ready_backend",
                     id="no-ready-backend"),
        pytest.param(ident(), b"catalog", Status.FORBIDDEN, "catalog_not_mirror",
                     id="catalog-gateway-identity"),
        pytest.param(ident(sa="isthmus-mirror", ns="default"), b"catalog", Status.FORBIDDEN,
                     "catalog_not_mirror", id="catalog-wrong-namespace"),
        pytest.param(ident(), b"bad target", Status.MALFORMED, "target_malformed",
                     id="malformed"),
        pytest.param(ident(), b"x" * 300, Status.MALFORMED, "target_too_long", id="too-long"),
        pytest.param(ident(), "\u00fc.shop:80".encode(), Status.MALFORMED,
                     "target_non_ascii", id="non-ascii"),
        pytest.param(ident("east"), b"bad target", Status.MALFORMED, "target_malformed",
                     id="malformed-before-link-check"),
    ],
)
def test_refusals(caller: IsthmusIdentity, raw: bytes, status: Status, reason: str) -> None:
    decision = route_inbound(SNAP, caller, raw)
    assert isinstance(decision, Refused)
    assert (decision.status, decision.reason) == (status, reason)


def test_one_normalized_name_for_authorization_and_routing() -> None:
    plain = route_inbound(SNAP, ident("central"), b"orders.shop:80")
    shouty = route_inbound(SNAP, ident("central"), b"ORDERS.SHOP.:80")
    assert isinstance(plain, Dial) and plain == shouty
    # and the refusal for west is the same for both spellings
    assert route_inbound(SNAP, ident(), b"Orders.Shop.:80") == route_inbound(
        SNAP, ident(), b"orders.shop:80"
    )


def test_dial_rotates_ready_backends() -> None:
    first = route_inbound(SNAP, ident(), b"users.shop:80", rotate=0)
    second = route_inbound(SNAP, ident(), b"users.shop:80", rotate=1)
    assert isinstance(first, Dial) and isinstance(second, Dial)
    assert first.addresses == (("10.0.0.1", 8080), ("10.0.0.2", 8080))
    assert second.addresses == (("10.0.0.2", 8080), ("10.0.0.1", 8080))


def test_catalog_for_mirror_of_linked_cluster() -> None:
    d = route_inbound(SNAP, ident(sa="isthmus-mirror"), b"catalog")
    assert isinstance(d, Dial) and d.addresses == (("127.0.0.1", 15080),)
    no_catalog = build_snapshot(services=[], slices=[], links=[link("west")], global_services=[])
    r = route_inbound(no_catalog, ident(sa="isthmus-mirror"), b"catalog")
    assert isinstance(r, Refused) and r.reason == "no_catalog"


def _route(endpoints: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    from gw_helpers import global_service

    snap = snapshot(gss=[global_service("shop", "users", 80, 20000, endpoints)])
    return snap.outbound[20000]


def test_order_peers_health_locality_weight() -> None:
    r = _route([
        gs_endpoint("far", 1, region="us"),
        gs_endpoint("region", 2, region="eu", zone="b"),
        gs_endpoint("zone", 3, region="eu", zone="a"),
        {**gs_endpoint("sick", 4, region="eu", zone="a"), "health": "Unhealthy"},
        gs_endpoint("off", 5, region="eu", zone="a", weight=0),
    ])
    order = [p.cluster for p in order_peers(r, set(), ("eu", "a"))]
    assert order == ["zone", "region", "far", "sick"]
    ejected = {("zone", "127.0.0.1", 3)}
    assert next(p.cluster for p in order_peers(r, ejected, ("eu", "a"))) == "region"
    assert order_peers(_route([gs_endpoint("a", 1)]), {("a", "127.0.0.1", 1)}, ("", "")) == ()


def test_order_peers_weighted() -> None:
    import random

    r = _route([gs_endpoint("heavy", 1, weight=900), gs_endpoint("light", 2, weight=100)])
    rng = random.Random(7)
    firsts = [order_peers(r, set(), ("", ""), rng.random)[0].cluster for _ in range(2000)]
    share = firsts.count("heavy") / len(firsts)
    assert 0.85 < share < 0.95


def test_pinned_ports_and_bad_objects() -> None:
    from gw_helpers import global_service

    gs = global_service("shop", "users", 80, 20000,
                        [gs_endpoint("east", 15443, pinned=[(80, 20001)]),
                         gs_endpoint("central", 15444, pinned=[(80, 20002)])])
    bad = {"apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
           "metadata": {"namespace": "x", "name": "bad"}, "spec": {"hosts": []}}
    snap = snapshot(gss=[gs, bad])
    assert set(snap.outbound) == {20000, 20001, 20002}
    assert [p.cluster for p in snap.outbound[20001].endpoints] == ["east"]
    assert snap.outbound[20002].pinned_cluster == "central"
    assert len(snap.outbound[20000].endpoints) == 2
    assert any("bad" in s for s in snap.skipped)


def test_backend_verdicts_memo_gives_the_same_decisions() -> None:
    import ipaddress

    from isthmus.gateway.backend_policy import BackendPolicy

    policy = BackendPolicy(denied=(ipaddress.ip_network("10.0.0.1/32"),))
    memo: dict[tuple[str, int], str | None] = {}
    for _ in range(2):  # the second round answers from the memo
        for caller, raw in ((ident(), b"users.shop:80"), (ident("central"), b"orders.shop:80"),
                            (ident(), b"hidden.shop:80")):
            fresh = route_inbound(SNAP, caller, raw, policy=policy)
            assert route_inbound(SNAP, caller, raw, policy=policy, verdicts=memo) == fresh
    assert memo[("10.0.0.1", 8080)] == "operator_denied"
    assert memo[("10.0.0.2", 8080)] is None
    users = route_inbound(SNAP, ident(), b"users.shop:80", policy=policy, verdicts=memo)
    assert isinstance(users, Dial) and users.addresses == (("10.0.0.2", 8080),)
    assert users.refused_backends == (("10.0.0.1", 8080, "operator_denied"),)
