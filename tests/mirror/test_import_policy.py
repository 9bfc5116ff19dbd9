"""Tables for the import policy (namespaces, limits per peer), and hypothesis: the
incremental admission always equals the whole-catalog decision."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.mirror.import_policy import (
    DENIED,
    NOT_ALLOWED,
    PORT_SHARE,
    PROTECTED,
    TOO_MANY_PORTS,
    TOO_MANY_SERVICES,
    ImportPolicy,
    PeerAdmission,
    admit,
    namespace_refusal,
)
from isthmus.mirror.model import CatalogEntry, PortSpec


def entry(ns: str, name: str, ports: int = 1, ready: int = 1) -> CatalogEntry:
    return CatalogEntry(ns, name, tuple(PortSpec(80 + i) for i in range(ports)), ready)


POLICY = ImportPolicy(install_namespace="isthmus-system", denied_namespaces=frozenset({"vault"}))


@pytest.mark.parametrize(
    ("policy", "namespace", "link_allowed", "reason"),
    [
        pytest.param(POLICY, "kube-system", None, PROTECTED, id="kube-system"),
        pytest.param(POLICY, "kube-public", None, PROTECTED, id="kube-public"),
        pytest.param(POLICY, "kube-node-lease", None, PROTECTED, id="kube-node-lease"),
        pytest.param(POLICY, "isthmus-system", None, PROTECTED, id="install-namespace"),
        pytest.param(ImportPolicy(install_namespace="mesh"), "mesh", None, PROTECTED,
                     id="configured-install-namespace"),
        pytest.param(ImportPolicy(install_namespace="mesh"), "isthmus-system", None, None,
                     id="default-name-not-special-when-installed-elsewhere"),
        pytest.param(POLICY, "vault", None, DENIED, id="operator-denied"),
        pytest.param(POLICY, "vault", frozenset({"vault"}), DENIED, id="deny-beats-link-allow"),
        pytest.param(POLICY, "shop", frozenset({"web"}), NOT_ALLOWED, id="not-in-link-list"),
        pytest.param(POLICY, "web", frozenset({"web"}), None, id="in-link-list"),
        pytest.param(ImportPolicy("isthmus-system", allowed_namespaces=frozenset({"web"})),
                     "shop", None, NOT_ALLOWED, id="not-in-cluster-list"),
        pytest.param(ImportPolicy("isthmus-system", allowed_namespaces=frozenset({"web"})),
                     "web", frozenset({"shop"}), NOT_ALLOWED, id="both-lists-must-allow"),
        pytest.param(POLICY, "kube-system", frozenset({"kube-system"}), PROTECTED,
                     id="link-cannot-allow-protected"),
        pytest.param(POLICY, "shop", None, None, id="ordinary"),
    ],
)
def test_namespace_policy(policy: ImportPolicy, namespace: str,
                          link_allowed: frozenset[str] | None, reason: str | None) -> None:
    refusal = namespace_refusal(policy, namespace, link_allowed)
    assert (refusal.reason if refusal else None) == reason
    if refusal is not None:
        assert namespace in refusal.message


def test_limits_take_entries_in_key_order() -> None:
    policy = ImportPolicy("isthmus-system", max_services=2, max_ports_per_service=3,
                          port_budget=100)
    offered = {e.key: e for e in (entry("a", "z"), entry("a", "b"), entry("a", "c"),
                                  entry("a", "wide", ports=4))}
    result = admit(offered, policy, None)
    assert sorted(result.entries) == [("a", "b"), ("a", "c")]
    assert result.refused[("a", "z")].reason == TOO_MANY_SERVICES
    assert result.refused[("a", "wide")].reason == TOO_MANY_PORTS


def test_port_share() -> None:
    policy = ImportPolicy("isthmus-system", port_budget=6)
    offered = {e.key: e for e in (entry("a", "x", ports=2), entry("a", "y", ports=2))}
    result = admit(offered, policy, None)
    assert list(result.entries) == [("a", "x")]  # 4 of 6 ports; y would need 4 more
    assert result.refused[("a", "y")].reason == PORT_SHARE


names = st.sampled_from(["a", "b", "c", "d", "e", "f"])
namespaces = st.sampled_from(["shop", "web", "kube-system", "vault"])
entries = st.builds(entry, namespaces, names, st.integers(1, 4), st.integers(0, 2))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), st.lists(entries, max_size=8)),
        st.tuples(st.just("delta"), st.lists(entries, max_size=4),
                  st.lists(st.tuples(namespaces, names), max_size=3)),
        st.tuples(st.just("policy"), st.integers(1, 6), st.integers(2, 20),
                  st.none() | st.frozensets(namespaces)),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(steps)
def test_incremental_admission_equals_the_whole_catalog_decision(ops: list[tuple]) -> None:
    policy = ImportPolicy("isthmus-system", denied_namespaces=frozenset({"vault"}),
                          max_services=4, max_ports_per_service=3, port_budget=12)
    peer = PeerAdmission(policy)
    before: dict = {}
    for op in ops:
        if op[0] == "snapshot":
            changed = peer.replace({e.key: e for e in op[1]})
        elif op[0] == "delta":
            changed = peer.update(op[1], op[2])
        else:
            changed = peer.reconfigure(
                ImportPolicy("isthmus-system", denied_namespaces=frozenset({"vault"}),
                             max_services=op[1], max_ports_per_service=3, port_budget=op[2]),
                op[3])
        expected = admit(peer.offered, peer.policy, peer.link_allowed)
        assert peer.entries == expected.entries
        assert peer.refused == expected.refused
        # every key whose admitted entry changed is reported
        for key in set(before) | set(peer.entries):
            if before.get(key) != peer.entries.get(key) and (
                    before.get(key) is None or peer.entries.get(key) is None
                    or before[key].ports != peer.entries[key].ports
                    or before[key].ready_endpoints != peer.entries[key].ready_endpoints):
                assert key in changed, (key, op)
        before = dict(peer.entries)


def test_notices_name_a_few_namespaces_then_summarize() -> None:
    from isthmus.mirror.link_conditions import MAX_NOTICES, import_conditions, notices, summary

    policy = ImportPolicy("isthmus-system", allowed_namespaces=frozenset({"ok"}),
                          max_services=1)
    offered = {e.key: e for e in [entry(f"ns{i:02d}", "s") for i in range(25)]
               + [entry("ok", "a"), entry("ok", "b")]}
    result = admit(offered, policy, None)
    events = notices({}, summary(result.refused), result.refused, "west")
    named = [n for r, n in events if r == "NamespaceRefused" and "into ns" in n]
    assert len(named) == MAX_NOTICES
    assert "ns00: namespace ns00 is not in the cluster's allowed namespaces" in named[0]
    assert any("15 more namespace(s)" in n for _, n in events)
    assert [r for r, _ in events].count("LimitExceeded") == 1
    assert notices(summary(result.refused), summary(result.refused), result.refused,
                   "west") == []
    conditions = {c["type"]: c for c in import_conditions(result.refused, {})}
    assert conditions["NamespacesRefused"]["reason"] == "NamespaceNotAllowed"
    assert "(and 20 more)" in conditions["NamespacesRefused"]["message"]
    assert conditions["LimitExceeded"]["reason"] == "TooManyServices"
    assert "ok/b:" in conditions["LimitExceeded"]["message"]
    assert conditions["InvalidEntries"]["status"] == "False"
