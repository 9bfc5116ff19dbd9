"""Tables for the pure parts: desired(), plan(), statuses, port allocation, the catalog log,
who may take the Lease."""

from __future__ import annotations

import copy
import datetime as dt
import json
import sys
from typing import Any

import pytest

from isthmus.cli.install import lease_placeholder
from isthmus.exports import (
    ExportedPort,
    ExportedService,
    build_exports,
    service_exports_by_key,
    timestamp_ms,
)
from isthmus.kube.shapes import decoders
from isthmus.kube.store import pack, unpack
from isthmus.lease import lease_free
from isthmus.mirror.applier import vips_of
from isthmus.mirror.desired import MERGED, PortKey, desired, global_service_status, port_names
from isthmus.mirror.export_catalog import ExportCatalog
from isthmus.mirror.model import CatalogEntry, LinkInfo, PeerView, PortSpec
from isthmus.mirror.names import mirror_service_name, pinned_service_name
from isthmus.mirror.plan import Apply, Conflict, Delete, plan, plan_status, ref_of, subset
from isthmus.mirror.ports import PortAllocator, PortsExhausted, recovered_ports
from isthmus.mirror.projection import SHAPES, project


def link(cluster: str) -> LinkInfo:
    return LinkInfo(name=cluster, uid=f"uid-{cluster}", cluster=cluster, trust_domain="td",
                    gateway_host=f"gw.{cluster}", gateway_port=15443)


def entry(name: str = "users", ns: str = "shop", ports: tuple[tuple[str, int], ...] = (("http", 80),),
          ready: int = 1) -> CatalogEntry:
    return CatalogEntry(ns, name, tuple(PortSpec(p, n) for n, p in ports), ready)


def peer(cluster: str, *entries: CatalogEntry, stale: str | None = None) -> PeerView:
    return PeerView(link(cluster), {e.key: e for e in entries}, stale)


def run_desired(*peers: PeerView, namespaces: frozenset[str] | None = None,
                **extra: Any) -> Any:
    keys = set()
    for p in peers:
        keys.update(p.entries)
    from isthmus.mirror.desired import required_ports

    alloc = PortAllocator(20000, 20100)
    ports = alloc.ensure(required_ports(list(peers), keys))
    return desired(list(peers), gateway_addresses=["10.0.0.2", "10.0.0.1"], ports=ports,
                   namespaces=namespaces, **extra)


def test_endpoint_weight_is_the_exporters() -> None:
    heavy = CatalogEntry("shop", "users", (PortSpec(80, "http"),), 1, weight=300)
    d = run_desired(peer("west", heavy), peer("east", entry()))
    gs = d.services[("shop", "users")].objects[("GlobalService", "shop", "users")]
    assert {e["cluster"]: e["weight"] for e in gs["spec"]["endpoints"]} == {
        "west": 300, "east": 100}


def test_weight_change_is_a_catalog_change() -> None:
    catalog = ExportCatalog()
    catalog.set(("shop", "a"), _export("a"))
    before = catalog.version
    catalog.set(("shop", "a"), _export("a"))
    assert catalog.version == before  # nothing changed
    catalog.set(("shop", "a"), _export("a").model_copy(update={"weight": 5}))
    assert catalog.version == before + 1
    assert catalog.snapshot("east")[1][0].weight == 5


def test_one_exporter_gives_five_objects() -> None:
    d = run_desired(peer("west", entry()))
    ds = d.services[("shop", "users")]
    assert sorted(ds.objects) == [
        ("EndpointSlice", "shop", "users-global"), ("EndpointSlice", "shop", "users-west-c4"),
        ("GlobalService", "shop", "users"), ("Service", "shop", "users-global"),
        ("Service", "shop", "users-west-c4")]
    gs = ds.objects[("GlobalService", "shop", "users")]
    assert gs["spec"]["hosts"] == ["users.shop.global", "users.shop.west.global"]
    assert gs["spec"]["endpoints"][0]["health"] == "Healthy"
    sl = ds.objects[("EndpointSlice", "shop", "users-global")]
    assert [e["addresses"] for e in sl["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "users-global"


@pytest.mark.parametrize(
    ("stale", "ready", "health"),
    [
        pytest.param(None, 2, "Healthy", id="fresh-ready"),
        pytest.param(None, 0, "Unhealthy", id="fresh-no-ready-endpoints"),
        pytest.param("UNAVAILABLE: down", 2, "Unhealthy", id="stale"),
    ],
)
def test_endpoint_health(stale: str | None, ready: int, health: str) -> None:
    d = run_desired(peer("west", entry(ready=ready), stale=stale))
    ds = d.services[("shop", "users")]
    assert ds.objects[("GlobalService", "shop", "users")]["spec"]["endpoints"][0]["health"] == health
    status = global_service_status(ds, {}, [])
    stale_cond = next(c for c in status["conditions"] if c["type"] == "Stale")
    assert stale_cond["status"] == ("True" if stale else "False")
    if stale:
        assert stale_cond["message"] == "west: UNAVAILABLE: down"


def test_conflicting_ports_first_cluster_wins_and_is_reported() -> None:
    d = run_desired(peer("west", entry(ports=(("http", 80),))),
                    peer("central", entry(ports=(("web", 80), ("metrics", 9100)))))
    ds = d.services[("shop", "users")]
    gs = ds.objects[("GlobalService", "shop", "users")]
    assert [(p["name"], p["port"]) for p in gs["spec"]["ports"]] == [("web", 80), ("metrics", 9100)]
    assert [e["cluster"] for e in gs["spec"]["endpoints"]] == ["central", "west"]
    assert ds.port_conflict is not None and "central" in ds.port_conflict
    # order of the peers does not matter
    d2 = run_desired(peer("central", entry(ports=(("web", 80), ("metrics", 9100)))),
                     peer("west", entry(ports=(("http", 80),))))
    assert d2.services[("shop", "users")].objects == ds.objects


def test_same_ports_no_conflict() -> None:
    d = run_desired(peer("west", entry()), peer("east", entry()))
    assert d.services[("shop", "users")].port_conflict is None


def test_missing_namespace_is_reported_not_imported() -> None:
    d = run_desired(peer("west", entry(), entry(ns="other")), namespaces=frozenset({"shop"}))
    assert set(d.services) == {("shop", "users")}
    assert d.missing_namespaces == {"west": frozenset({"other"})}


@pytest.mark.parametrize(
    ("ports", "names"),
    [
        pytest.param([PortSpec(80)], [""], id="single-unnamed-ok"),
        pytest.param([PortSpec(80), PortSpec(81)], ["p80", "p81"], id="several-unnamed"),
        pytest.param([PortSpec(80, "a"), PortSpec(81, "a")], ["a", "p81"], id="repeated"),
    ],
)
def test_port_names(ports: list[PortSpec], names: list[str]) -> None:
    assert port_names(ports) == names


def test_long_names_fit_and_stay_unique() -> None:
    long = "s" * 60
    assert len(mirror_service_name(long)) <= 63
    assert len(pinned_service_name(long, "c" * 63)) <= 63
    assert pinned_service_name(long, "a") != pinned_service_name(long, "b")
    assert mirror_service_name("short") == "short-global"


def _ours(obj: dict[str, Any], **labels: str) -> dict[str, Any]:
    out = {**obj, "metadata": {**obj["metadata"], "uid": "u1", "resourceVersion": "5",
                               "labels": {**obj["metadata"]["labels"], **labels}}}
    return out


def _service_want() -> dict[str, Any]:
    d = run_desired(peer("west", entry()))
    return d.services[("shop", "users")].objects[("Service", "shop", "users-global")]


REF = ("Service", "shop", "users-global")


@pytest.mark.parametrize(
    ("observed", "wanted", "expected"),
    [
        pytest.param({}, True, [Apply], id="absent-create"),
        pytest.param({REF: "same"}, True, [], id="same-nothing"),
        pytest.param({REF: "changed-port"}, True, [Apply], id="changed-apply"),
        pytest.param({REF: "extra-owner"}, True, [Apply], id="stale-owner-label-apply"),
        pytest.param({REF: "not-ours"}, True, [Conflict], id="not-ours-conflict"),
        pytest.param({REF: "other-mirror"}, True, [Conflict], id="other-mirror-conflict"),
        pytest.param({REF: "same"}, False, [Delete], id="unwanted-delete"),
        pytest.param({REF: "not-ours"}, False, [], id="unwanted-not-ours-untouched"),
    ],
)
def test_plan_table(observed: dict[Any, str], wanted: bool, expected: list[type]) -> None:
    want = _service_want()
    variants = {
        "same": _ours(want) | {"spec": {**want["spec"], "clusterIP": "10.96.0.9"}},
        "changed-port": _ours(want) | {"spec": {**want["spec"], "ports": []}},
        "extra-owner": _ours(want, **{"link.isthmus.io/east": "uid-east"}),
        "not-ours": {**want, "metadata": {**want["metadata"], "labels": {"team": "x"}}},
        "other-mirror": _ours(want, **{"isthmus.io/global-service": "other"}),
    }
    obs = {ref: variants[name] for ref, name in observed.items()}
    actions = plan(obs, {REF: want} if wanted else {})
    assert [type(a) for a in actions] == expected
    if expected == [Apply] and not observed:
        assert actions[0].check_first  # type: ignore[union-attr]
    if expected == [Delete]:
        assert actions[0].uid == "u1"  # type: ignore[union-attr]


def _one_import() -> dict[Any, Any]:
    return run_desired(peer("west", entry())).services[("shop", "users")].objects


def _foreign(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "uid": "theirs", "labels": {"team": "x"}}}


def test_plan_writes_the_global_service_first() -> None:
    actions = plan({}, _one_import())
    assert next(a.obj["kind"] for a in actions if isinstance(a, Apply)) == "GlobalService"


def test_global_service_taken_blocks_and_removes_the_whole_import() -> None:
    want = _one_import()
    gs_ref = ("GlobalService", "shop", "users")
    ours = _ours(want[REF])
    actions = plan({gs_ref: _foreign(want[gs_ref]), REF: ours}, want)
    assert [(type(a), getattr(a, "ref", None)) for a in actions] == [
        (Conflict, gs_ref), (Delete, REF)]


@pytest.mark.parametrize("taken", ["Service", "EndpointSlice"])
def test_one_of_a_service_and_slice_pair_taken_keeps_the_other_out(taken: str) -> None:
    want = _one_import()
    taken_ref = (taken, "shop", "users-global")
    partner = ("EndpointSlice" if taken == "Service" else "Service", "shop", "users-global")
    observed = {taken_ref: _foreign(want[taken_ref]), partner: _ours(want[partner])}
    actions = plan(observed, want)
    assert Conflict(taken_ref, actions[[getattr(a, "ref", None) for a in actions].index(
        taken_ref)].message) in actions  # type: ignore[union-attr]
    assert Delete(partner, "u1") in actions
    applied = {ref_of(a.obj) for a in actions if isinstance(a, Apply)}
    assert applied == {("GlobalService", "shop", "users"), ("Service", "shop", "users-west-c4"),
                       ("EndpointSlice", "shop", "users-west-c4")}


def test_update_carries_the_observed_uid() -> None:
    want = _one_import()
    changed = _ours(want[REF]) | {"spec": {**want[REF]["spec"], "ports": []}}
    (action,) = [a for a in plan({REF: changed}, {REF: want[REF]}) if isinstance(a, Apply)]
    assert action.uid == "u1" and not action.check_first


def test_status_transition_times_kept_when_unchanged() -> None:
    ds = run_desired(peer("west", entry())).services[("shop", "users")]
    gs = ds.objects[("GlobalService", "shop", "users")]
    t0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    status = global_service_status(ds, {"users-global": "10.96.0.5"}, [])
    first = plan_status(gs, status, None, t0)
    assert first is not None
    observed = {**gs, "status": first.obj["status"]}
    assert plan_status(gs, status, observed, t0 + dt.timedelta(hours=1)) is None
    stale = run_desired(peer("west", entry(), stale="down")).services[("shop", "users")]
    later = plan_status(gs, global_service_status(stale, {"users-global": "10.96.0.5"}, []),
                        observed, t0 + dt.timedelta(hours=1))
    assert later is not None
    times = {c["type"]: c["lastTransitionTime"] for c in later.obj["status"]["conditions"]}
    assert times["Stale"] == "2030-01-01T01:00:00Z"
    assert times["PortConflict"] == "2030-01-01T00:00:00Z"


def test_ports_recovered_from_global_services_stay_put() -> None:
    gs = {"metadata": {"namespace": "shop", "name": "users"},
          "spec": {"ports": [{"port": 80, "outboundPort": 20007}],
                   "endpoints": [{"cluster": "west",
                                  "pinnedPorts": [{"port": 80, "outboundPort": 20003}]}]}}
    found = recovered_ports([gs])
    assert found == {PortKey("shop", "users", MERGED, 80): 20007,
                     PortKey("shop", "users", "west", 80): 20003}
    alloc = PortAllocator(20000, 20010, found)
    got = alloc.ensure([*found, PortKey("shop", "users", "east", 80)])
    assert got[PortKey("shop", "users", MERGED, 80)] == 20007
    assert got[PortKey("shop", "users", "east", 80)] not in (20003, 20007)
    alloc.release(("shop", "users"))
    assert alloc.by_key == {}


def test_ports_exhausted() -> None:
    alloc = PortAllocator(20000, 20001)
    alloc.ensure([PortKey("a", "b", "", 1), PortKey("a", "b", "", 2)])
    with pytest.raises(PortsExhausted):
        alloc.ensure([PortKey("a", "b", "", 3)])


def _export(name: str, allowed: frozenset[str] | None = None, port: int = 80) -> ExportedService:
    return ExportedService(namespace="shop", name=name, ports=(ExportedPort(port=port),),
                           allowed_clusters=allowed)


def test_catalog_resume_filters_and_expires() -> None:
    cat = ExportCatalog(history=3)
    cat.set(("shop", "a"), _export("a"))
    cat.set(("shop", "b"), _export("b", frozenset({"east"})))
    version, entries = cat.snapshot("west")
    assert [e.name for e in entries] == ["a"] and version == 2
    cat.set(("shop", "a"), _export("a", port=81))
    cat.set(("shop", "b"), _export("b", frozenset({"west"})))
    changes = cat.changes_since(2, "west")
    assert changes is not None
    assert [e.name for e in changes.upserts] == ["a", "b"] and changes.removed == ()
    assert cat.set(("shop", "a"), _export("a", port=81)) is False  # no change, no version
    cat.set(("shop", "b"), None)
    changes = cat.changes_since(4, "west")
    assert changes is not None and changes.removed == (("shop", "b"),)
    assert cat.changes_since(0, "west") is None  # older than the log: snapshot instead
    assert cat.changes_since(99, "west") is None  # from the future (another epoch)


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        pytest.param(None, 100, id="absent-older-exporter"),
        pytest.param(0, 0, id="zero-kept"),
        pytest.param(750, 750, id="value"),
    ],
)
def test_weight_from_the_wire(weight: int | None, expected: int) -> None:
    from isthmus.mirror.catalog_server import entry_message
    from isthmus.mirror.catalog_validation import entry_from_message
    from isthmus.mirror.wire import pb

    msg = pb.Service(namespace="shop", name="users", ports=[pb.Port(name="http", port=80)])
    if weight is not None:
        msg.weight = weight
    got = entry_from_message(msg)
    assert isinstance(got, CatalogEntry) and got.weight == expected
    # and the server's encoding round-trips
    back = entry_from_message(entry_message(got))
    assert isinstance(back, CatalogEntry) and back.weight == expected


def _as_served(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as an API server answers it: defaults, bookkeeping and managedFields added."""
    served = copy.deepcopy(obj)
    meta = served["metadata"]
    meta.update(uid="u-1", resourceVersion="42", creationTimestamp="2026-11-22T00:00:00Z",
                managedFields=[{"manager": "isthmus-mirror", "fieldsV1": {"f:spec": {}}}],
                annotations={"isthmus.io/export-to": "east", "other/big": "x" * 1000})
    if served["kind"] == "Service":
        served["spec"].update(clusterIP="10.96.0.7", clusterIPs=["10.96.0.7"],
                              sessionAffinity="None", ipFamilies=["IPv4"])
        served["status"] = {"loadBalancer": {}}
    if served["kind"] == "EndpointSlice":
        for ep in served["endpoints"]:
            ep.update(nodeName="n1", zone="z", targetRef={"kind": "Pod", "name": "p"})
            ep["conditions"].update(serving=True, terminating=False)
    return served


def test_projection_keeps_what_the_mirror_writes_and_reads() -> None:
    ds = run_desired(peer("west", entry(ports=(("http", 80), ("", 81)))), peer("east", entry()),
                     service_imports=True, import_vips={("shop", "users"): "10.96.0.7"})
    ds = ds.services[("shop", "users")]
    for ref, want in ds.objects.items():
        slim = project(_as_served(want))
        assert plan({ref: slim}, {ref: want}) == [], ref  # nothing to re-apply
        # decoding the served JSON straight into the kind's shape loses nothing kept
        shaped = decoders(SHAPES[ref[0]]).object(json.dumps(_as_served(want)).encode())
        assert project(shaped) == slim, ref
        meta = slim["metadata"]
        assert "managedFields" not in meta and "creationTimestamp" not in meta
        assert meta["uid"] == "u-1" and meta["resourceVersion"] == "42"
        assert meta["annotations"] == {"isthmus.io/export-to": "east"}
    svc = project(_as_served(ds.objects[("Service", "shop", "users-global")]))
    assert vips_of({("Service", "shop", "users-global"): svc}) == {"users-global": "10.96.0.7"}
    assert set(svc["spec"]) == {"type", "clusterIP", "ports"} and "status" not in svc


def test_projection_keeps_what_export_reads() -> None:
    svc = _as_served({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "users", "namespace": "shop",
                                   "labels": {"isthmus.io/export": "true"}},
                      "spec": {"ports": [{"name": "http", "port": 80, "appProtocol": "http"}]}})
    sl = _as_served({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": "users-x", "namespace": "shop",
                                  "labels": {"kubernetes.io/service-name": "users"}},
                     "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                     "endpoints": [{"addresses": ["10.1.0.1"], "conditions": {"ready": True}},
                                   {"addresses": ["10.1.0.2"], "conditions": {"ready": False}}]})
    assert build_exports([project(svc)], [project(sl)]) == build_exports([svc], [sl])
    shaped_svc = decoders(SHAPES["Service"]).object(json.dumps(svc).encode())
    shaped_sl = decoders(SHAPES["EndpointSlice"]).object(json.dumps(sl).encode())
    assert build_exports([project(shaped_svc)], [project(shaped_sl)]) == build_exports([svc], [sl])
    assert build_exports([project(svc)], [])[("shop", "users")].exported_at_ms > 0
    # a ServiceExport's age survives its projection too
    se = _as_served({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                     "metadata": {"name": "users", "namespace": "shop"}})
    shaped_se = decoders(SHAPES["ServiceExport"]).object(json.dumps(se).encode())
    assert (service_exports_by_key([project(shaped_se)]) == service_exports_by_key([se])
            == {("shop", "users"): timestamp_ms("2026-11-22T00:00:00Z")})


def test_projection_shares_equal_strings_of_a_decoded_object() -> None:
    """The decoder makes every string a new object; the projection interns the namespace
    (held by every cache key) and makes a label value equal to the name or to another
    label one object, so the packed form writes it once."""
    ds = run_desired(peer("west", entry()))
    want = ds.services[("shop", "users")].objects[("EndpointSlice", "shop", "users-global")]
    body = json.dumps(_as_served(want)).encode()
    slim = project(decoders(SHAPES["EndpointSlice"]).object(body))
    meta, labels = slim["metadata"], slim["metadata"]["labels"]
    assert meta["namespace"] is sys.intern("shop")
    assert labels["kubernetes.io/service-name"] is meta["name"]
    assert labels["isthmus.io/link-uid"] is labels["link.isthmus.io/west"]
    unshared = copy.deepcopy(slim)
    unshared["metadata"]["labels"] = {k: "".join(v) for k, v in labels.items()}
    assert unshared == slim
    assert len(pack(slim)) < len(pack(unshared))  # written once, referenced after


def test_port_release_frees_only_that_service() -> None:
    alloc = PortAllocator(20000, 20010)
    a80, a81 = PortKey("shop", "a", MERGED, 80), PortKey("shop", "a", MERGED, 81)
    b80 = PortKey("shop", "b", MERGED, 80)
    alloc.ensure([a80, a81, b80])
    alloc.release(("shop", "a"), keep=[a80])
    assert set(alloc.by_key) == {a80, b80} and len(alloc.used) == 2
    alloc.release(("shop", "a"))
    alloc.release(("shop", "zzz"))
    assert set(alloc.by_key) == {b80}


def test_projection_survives_packing_and_plans_nothing() -> None:
    """What the caches keep (project, then pack) reads back as the same object, so a
    packed cache never makes ``plan`` see a difference."""
    ds = run_desired(peer("west", entry("a")))
    wanted = ds.services[("shop", "a")].objects
    kept = {ref: unpack(pack(project(_as_served(o)))) for ref, o in wanted.items()}
    assert kept == {ref: project(_as_served(o)) for ref, o in wanted.items()}
    assert plan(kept, wanted) == []


_NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("spec", "free"),
    [
        pytest.param(lease_placeholder()["spec"], True, id="as-install-creates-it"),
        pytest.param({"holderIdentity": "", "leaseDurationSeconds": 1}, True, id="released"),
        pytest.param({"holderIdentity": "me", "renewTime": "2026-01-01T11:59:59.000000Z",
                      "leaseDurationSeconds": 15}, True, id="ours"),
        pytest.param({"holderIdentity": "other", "renewTime": "2026-01-01T11:59:50.000000Z",
                      "leaseDurationSeconds": 15}, False, id="held"),
        pytest.param({"holderIdentity": "other", "renewTime": "2026-01-01T11:59:40.000000Z",
                      "leaseDurationSeconds": 15}, True, id="expired"),
        pytest.param({"holderIdentity": "other", "acquireTime": "2026-01-01T11:59:50.000000Z",
                      "leaseDurationSeconds": 15}, False, id="acquired-not-renewed"),
        pytest.param({"holderIdentity": "other"}, True, id="holder-without-times"),
    ],
)
def test_lease_free(spec: dict[str, Any], free: bool) -> None:
    assert lease_free(spec, "me", _NOW) is free


@pytest.mark.parametrize(
    ("want", "have", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1}, True, id="equal"),
        pytest.param({"a": 1}, {"a": 1, "default": "x"}, True, id="server-default-extra"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, False, id="field-missing"),
        pytest.param({"p": [{"port": 80}]}, {"p": [{"port": 80, "protocol": "TCP"}]}, True,
                     id="list-items-with-defaults"),
        pytest.param({"p": [{"port": 80}]}, {"p": [{"port": 80}, {"port": 81}]}, False,
                     id="list-longer"),
        pytest.param({"p": []}, {}, True, id="empty-list-absent"),
        pytest.param({"m": {}}, {"m": None}, True, id="empty-dict-null"),
        pytest.param({"a": "1"}, {"a": 1}, False, id="string-is-not-int"),
    ],
)
def test_subset(want: Any, have: Any, expected: bool) -> None:
    assert subset(want, have) is expected


@pytest.mark.parametrize(("served", "vip", "ips"), [
    pytest.param(True, "10.96.0.7", ["10.96.0.7"], id="served-with-vip"),
    pytest.param(True, None, None, id="served-before-the-mirror-service-has-an-ip"),
    pytest.param(False, "10.96.0.7", "absent", id="crd-not-served-no-serviceimport"),
])
def test_service_import_beside_the_global_service(served: bool, vip: str | None,
                                                   ips: Any) -> None:
    ds = run_desired(peer("west", entry(ports=(("http", 80), ("", 81)))), peer("east", entry()),
                     service_imports=served,
                     import_vips={("shop", "users"): vip} if vip else None)
    objects = ds.services[("shop", "users")].objects
    si = objects.get(("ServiceImport", "shop", "users"))
    if ips == "absent":
        assert si is None
        return
    assert si is not None
    assert si["apiVersion"] == "multicluster.x-k8s.io/v1alpha1"
    assert si["spec"]["type"] == "ClusterSetIP"
    assert si["spec"].get("ips") == ips
    assert si["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "name": "http"},
                                   {"port": 81, "protocol": "TCP", "name": "p81"}]
    gs = objects[("GlobalService", "shop", "users")]
    assert si["metadata"]["labels"] == gs["metadata"]["labels"]  # owned, collected alike


def test_mirror_slices_carry_the_mcs_labels() -> None:
    ds = run_desired(peer("west", entry()), peer("east", entry()))
    slices = {ref[2]: obj for ref, obj in ds.services[("shop", "users")].objects.items()
              if ref[0] == "EndpointSlice"}
    assert slices
    for name, sl in slices.items():
        labels = sl["metadata"]["labels"]
        assert labels["multicluster.kubernetes.io/service-name"] == "users"
        pinned = labels.get("isthmus.io/pinned-cluster")
        assert labels.get("multicluster.kubernetes.io/source-cluster") == pinned, name
