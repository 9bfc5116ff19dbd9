"""The control-plane harness starts real, RBAC-enforcing API servers, several at once."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

from isthmus.devcluster import ControlPlane


def test_three_control_planes_run_side_by_side(clusters: list[ControlPlane]) -> None:
    ports = {cp.api_port for cp in clusters}
    assert len(ports) == 3
    for cp in clusters:
        status, body = cp.admin_request("GET", "/version")
        assert status == 200
        assert json.loads(body)["gitVersion"].startswith("v1.")


def test_rbac_is_enforced(cluster: ControlPlane, unique: str) -> None:
    """A ServiceAccount with no bindings is authenticated but may do nothing."""
    status, _ = cluster.admin_request(
        "POST", "/api/v1/namespaces", {"metadata": {"name": unique}}
    )
    assert status == 201
    status, _ = cluster.admin_request(
        "POST", f"/api/v1/namespaces/{unique}/serviceaccounts", {"metadata": {"name": "nobody"}}
    )
    assert status == 201
    kubeconfig = cluster.service_account_kubeconfig(
        unique, "nobody", cluster.kubeconfig.parent / f"{unique}.kubeconfig"
    )
    import yaml

    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    ctx = ssl.create_default_context(cafile=str(cluster.workdir / "pki" / "ca.crt"))  # type: ignore[operator]
    req = urllib.request.Request(
        f"{cluster.server}/api/v1/namespaces/{unique}/secrets",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        urllib.request.urlopen(req, context=ctx, timeout=10)
        raise AssertionError("an unbound ServiceAccount listed secrets")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
        assert b"forbidden" in exc.read()


def test_controller_manager_runs(cluster: ControlPlane, unique: str) -> None:
    """The namespace controller works: a new namespace gets its default ServiceAccount."""
    import time

    cluster.admin_request("POST", "/api/v1/namespaces", {"metadata": {"name": unique}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _ = cluster.admin_request(
            "GET", f"/api/v1/namespaces/{unique}/serviceaccounts/default"
        )
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError("kube-controller-manager never created the default ServiceAccount")


def test_stop_cleans_up(fresh_cluster) -> None:  # type: ignore[no-untyped-def]
    cp = fresh_cluster()
    workdir = cp.workdir
    assert workdir is not None and workdir.exists()
    procs = [p.popen for p in cp._procs.values()]
    cp.stop()
    assert all(p is None or p.poll() is not None for p in procs)
    assert not workdir.exists()
