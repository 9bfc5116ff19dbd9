"""LISTs in the Kubernetes protobuf encoding: the same objects as the JSON LIST, on a real
API server, and clear errors for what is not a good protobuf answer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from isthmus.api.crds import install_crds
from isthmus.devcluster import ControlPlane
from isthmus.kube import errors, protobuf
from isthmus.kube.client import KubeApi
from isthmus.kube.reflector import Reflector, WatchSettings
from isthmus.kube.resources import ENDPOINTSLICES, LINKS, NAMESPACES, SERVICES
from isthmus.mirror.projection import SHAPES, project

wire: Any = protobuf.wire

# --- pure: table tests ---------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/vnd.kubernetes.protobuf", True),
    ("application/vnd.kubernetes.protobuf;stream=watch", True),
    ("application/json", False),
    ("", False),
    (None, False),
])
def test_is_protobuf(content_type: str | None, expected: bool) -> None:
    assert protobuf.is_protobuf(content_type) is expected


def _envelope(raw: bytes, encoding: str = "") -> bytes:
    msg = wire.Unknown(raw=raw)
    if encoding:
        msg.contentEncoding = encoding
    return b"k8s\x00" + msg.SerializeToString()


@pytest.mark.parametrize(("body", "message"), [
    (b'{"kind": "ServiceList"}', "no k8s"),
    (b"", "no k8s"),
    (b"k8s\x00\x12\xff\x01", "malformed protobuf"),  # raw claims 255 bytes, has none
    (_envelope(b"", encoding="gzip"), "content encoding"),
])
def test_bad_answers_are_value_errors(body: bytes, message: str) -> None:
    decode = protobuf.page_decoder("Service")
    assert decode is not None
    with pytest.raises(ValueError, match=message):
        decode(body)


def test_truncated_list_is_a_value_error() -> None:
    page = wire.ServiceList(items=[wire.Service(metadata=wire.ObjectMeta(name="a"))])
    body = _envelope(page.SerializeToString()[:-1])
    decode = protobuf.page_decoder("Service")
    assert decode is not None
    with pytest.raises(ValueError, match="malformed protobuf"):
        decode(body)


def test_only_services_and_slices_have_page_decoders() -> None:
    assert protobuf.page_decoder("Service") is not None
    assert protobuf.page_decoder("EndpointSlice") is not None
    assert protobuf.page_decoder("GlobalService") is None  # custom resources: JSON only
    assert protobuf.page_decoder("Namespace") is None


@pytest.mark.parametrize(("message", "expected"), [
    (wire.ServicePort(port=80), {"port": 80}),
    (wire.ServicePort(name="", protocol="TCP", port=80, nodePort=0,
                      targetPort=wire.IntOrString(type=0, intVal=8080)),
     {"protocol": "TCP", "port": 80, "targetPort": 8080}),
    (wire.ServicePort(name="web", port=443, appProtocol="", nodePort=30443,
                      targetPort=wire.IntOrString(type=1, strVal="https")),
     {"name": "web", "port": 443, "appProtocol": "", "targetPort": "https", "nodePort": 30443}),
])
def test_service_port_fields_follow_the_json_encoding(message: Any,
                                                       expected: dict[str, Any]) -> None:
    # non-pointer Go fields are omitted when empty (omitempty); pointer ones when unset
    assert protobuf.service_port(message) == expected


@pytest.mark.parametrize(("message", "expected"), [
    (wire.Endpoint(addresses=["10.0.0.1"]), {"addresses": ["10.0.0.1"]}),
    (wire.Endpoint(addresses=["10.0.0.1"], conditions=wire.EndpointConditions()),
     {"addresses": ["10.0.0.1"], "conditions": {}}),
    (wire.Endpoint(conditions=wire.EndpointConditions(ready=False, terminating=True)),
     {"addresses": [], "conditions": {"ready": False, "terminating": True}}),
])
def test_endpoint_conditions_only_when_set(message: Any, expected: dict[str, Any]) -> None:
    assert protobuf.endpoint(message) == expected


def test_object_meta_and_deletion_time() -> None:
    when = dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.UTC)
    meta = wire.ObjectMeta(name="a", namespace="n", resourceVersion="7",
                           deletionTimestamp=wire.Time(seconds=int(when.timestamp())),
                           labels={"x": "1"})
    assert protobuf.object_meta(meta) == {
        "name": "a", "namespace": "n", "resourceVersion": "7",
        "deletionTimestamp": "2026-12-07T01:02:03Z", "labels": {"x": "1"}}
    assert protobuf.object_meta(wire.ObjectMeta()) == {}


def test_status_reads_every_field_errors_use() -> None:
    st = wire.Status(status="Failure", message="too old", reason="Expired", code=410,
                     details=wire.StatusDetails(
                         kind="services", retryAfterSeconds=2,
                         causes=[wire.StatusCause(reason="FieldManagerConflict", field="f")]))
    data = protobuf.status(_envelope(st.SerializeToString()))
    error = errors.from_status(500, data)
    assert isinstance(error, errors.GoneError)
    assert (error.status, error.reason, error.message) == (410, "Expired", "too old")
    assert error.causes[0]["reason"] == "FieldManagerConflict"
    assert data["details"]["retryAfterSeconds"] == 2


def test_list_page_metadata() -> None:
    page = wire.ServiceList(metadata=wire.ListMeta(resourceVersion="42", **{"continue": "tok"}))
    decode = protobuf.page_decoder("Service")
    assert decode is not None
    assert decode(_envelope(page.SerializeToString())) == {
        "metadata": {"resourceVersion": "42", "continue": "tok"}, "items": []}
    last = decode(_envelope(wire.ServiceList(metadata=wire.ListMeta(resourceVersion="9"))
                            .SerializeToString()))
    assert last["metadata"] == {"resourceVersion": "9"}


# --- against a real API server --------------------------------------------------------------

_META = ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp", "labels",
         "annotations")
_SERVICE_PORT = ("name", "protocol", "appProtocol", "port", "targetPort", "nodePort")


def _restrict(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON object cut to the fields the protobuf decoders read."""
    out: dict[str, Any] = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                           "metadata": {k: v for k, v in obj["metadata"].items() if k in _META}}
    if obj["kind"] == "Service":
        spec = obj["spec"]
        out["spec"] = {k: spec[k] for k in ("clusterIP", "type") if k in spec}
        if spec.get("ports"):
            out["spec"]["ports"] = [{k: p[k] for k in _SERVICE_PORT if k in p}
                                    for p in spec["ports"]]
    else:
        out["addressType"] = obj["addressType"]
        out["ports"] = obj.get("ports") or []
        out["endpoints"] = []
        for ep in obj.get("endpoints") or []:
            slim: dict[str, Any] = {"addresses": ep["addresses"]}
            if "conditions" in ep:
                slim["conditions"] = {k: v for k, v in ep["conditions"].items()
                                      if k in ("ready", "serving", "terminating")}
            out["endpoints"].append(slim)
    return out


def _services(ns: str) -> list[dict[str, Any]]:
    meta = {"namespace": ns, "labels": {"isthmus.io/export": "true", "app": "x"},
            "annotations": {"isthmus.io/export-to": "east", "other.io/note": "n"}}
    return [
        {"metadata": {**meta, "name": "multi"},
         "spec": {"ports": [
             {"name": "http", "port": 80, "targetPort": "web", "appProtocol": "http"},
             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]}},
        {"metadata": {"name": "nodeport", "namespace": ns},
         "spec": {"type": "NodePort", "ports": [{"port": 8080}]}},
        {"metadata": {"name": "headless", "namespace": ns},
         "spec": {"clusterIP": "None", "ports": [{"port": 9000, "appProtocol": "kubernetes.io/h2c"}]}},
        {"metadata": {"name": "external", "namespace": ns},
         "spec": {"type": "ExternalName", "externalName": "example.com"}},
        {"metadata": {"name": "going", "namespace": ns, "finalizers": ["isthmus.io/test"]},
         "spec": {"ports": [{"port": 1}]}},
    ]


def _slices(ns: str) -> list[dict[str, Any]]:
    base = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}
    return [
        {**base, "metadata": {"name": "full", "namespace": ns,
                              "labels": {"kubernetes.io/service-name": "multi"}},
         "addressType": "IPv4",
         "endpoints": [
             {"addresses": ["10.1.0.1"], "conditions": {"ready": True}},
             {"addresses": ["10.1.0.2", "10.1.0.3"],
              "conditions": {"ready": False, "serving": True, "terminating": True}},
             {"addresses": ["10.1.0.4"]}],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
                   {"port": 53, "protocol": "UDP"}]},
        {**base, "metadata": {"name": "empty", "namespace": ns}, "addressType": "IPv6",
         "endpoints": [], "ports": []},
    ]


async def _world(api: KubeApi, ns: str) -> None:
    await api.create(NAMESPACES, {"metadata": {"name": ns}})
    for svc in _services(ns):
        await api.create(SERVICES, svc, ns)
    for sl in _slices(ns):
        await api.create(ENDPOINTSLICES, sl, ns)
    await api.delete(SERVICES, "going", ns)  # held by its finalizer: a deletionTimestamp


async def _release(api: KubeApi, ns: str) -> None:
    await api.merge_patch(SERVICES, "going", {"metadata": {"finalizers": None}}, ns,
                          field_manager="test")


@pytest.mark.parametrize("res", [SERVICES, ENDPOINTSLICES], ids=["services", "slices"])
async def test_protobuf_list_holds_what_the_json_list_holds(api: KubeApi, unique: str,
                                                            res: Any) -> None:
    await _world(api, unique)
    try:
        decode = protobuf.page_decoder(res.kind)
        as_json = await api.list(res, unique)
        as_pb = await api.list(res, unique, protobuf_decode=decode)
        json_items = [{"apiVersion": res.api_version, "kind": res.kind, **o}
                      for o in as_json["items"]]
        assert len(json_items) == len(as_pb["items"]) >= 2
        assert [_restrict(o) for o in json_items] == as_pb["items"]
        assert as_pb["metadata"]["resourceVersion"]
        if res is SERVICES:
            going = next(o for o in as_pb["items"] if o["metadata"]["name"] == "going")
            assert going["metadata"]["deletionTimestamp"].endswith("Z")
    finally:
        await _release(api, unique)


async def test_protobuf_reflector_gives_the_mirror_the_same_cache(api: KubeApi,
                                                                  unique: str) -> None:
    """Through the mirror's shapes and projection, a protobuf-LISTed cache equals a
    JSON-LISTed one, one object per page (continue tokens) included."""
    await _world(api, unique)
    try:
        for res in (SERVICES, ENDPOINTSLICES):
            stores = []
            for use_protobuf in (False, True):
                reflector = Reflector(api, res, unique, transform=project,
                                      shape=SHAPES[res.kind], packed=True,
                                      use_protobuf=use_protobuf,
                                      settings=WatchSettings(list_page=1))
                events = reflector.events()
                while (await anext(events))[0] != "SYNCED":
                    pass
                await events.aclose()
                stores.append(dict(reflector.store.items()))
            assert stores[0] == stores[1]
            assert len(stores[0]) >= 2
    finally:
        await _release(api, unique)


async def test_a_custom_resource_answers_json_and_is_read_as_json(api: KubeApi) -> None:
    await install_crds(api)
    decode = protobuf.page_decoder("Service")
    answer = await api.list(LINKS, protobuf_decode=decode)  # the server has no protobuf here
    assert isinstance(answer["items"], list)
    assert answer["metadata"]["resourceVersion"]


async def test_errors_come_back_as_protobuf_status(api: KubeApi, unique: str) -> None:
    decode = protobuf.page_decoder("Service")
    with pytest.raises(errors.NotFoundError) as missing:
        await api.request("GET", f"/api/v1/namespaces/{unique}/services/absent",
                          protobuf_decode=decode)
    assert missing.value.reason == "NotFound"  # read from the protobuf Status
    assert '"absent" not found' in missing.value.message


async def test_expired_continue_token_is_gone(fresh_cluster: Callable[..., ControlPlane],
                                             ) -> None:
    cp = fresh_cluster(watch_cache=False)
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await _world(api, "p")
        decode = protobuf.page_decoder("Service")
        first = await api.list(SERVICES, "p", limit=1, protobuf_decode=decode)
        token = first["metadata"]["continue"]
        await api.delete(SERVICES, "nodeport", "p")  # a newer revision to compact up to
        await asyncio.to_thread(cp.compact_etcd)
        with pytest.raises(errors.GoneError) as gone:
            await api.list(SERVICES, "p", limit=1, continue_token=token,
                           protobuf_decode=decode)
        assert gone.value.reason == "Expired"  # read from the protobuf Status
        assert "continue" in gone.value.message
        await _release(api, "p")
    finally:
        await api.close()
