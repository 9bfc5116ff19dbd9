"""Write faults from a real API server: a ValidatingWebhookConfiguration (failurePolicy
Fail, scoped to the test's namespace and to mirror Services) points the real
kube-apiserver at a real HTTPS webhook run here (aiohttp, a serving certificate from a test
CA, ``caBundle`` set, reached by URL at 127.0.0.1). The webhook fails, denies with a status
code, hangs past its timeout, or is down, so the API server itself answers the mirror's
writes with 500 ("failed calling webhook"), 409, or a timeout; the mirror must retry a
bounded number of times, record a condition and an Event, and recover when it allows."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mirror_helpers import Mesh, condition, ensure_namespace, eventually, export_service

from isthmus.devcluster.controlplane import free_port
from isthmus.devcluster.pki import ClusterPki
from isthmus.kube import errors as kube_errors
from isthmus.kube.resources import EVENTS, SERVICES, Resource

VALIDATING_WEBHOOKS = Resource("admissionregistration.k8s.io", "v1",
                               "validatingwebhookconfigurations",
                               "ValidatingWebhookConfiguration", False)
TIMEOUT_SECONDS = 1


class Webhook:
    """An admission webhook whose answers the test scripts: ``plan`` (consumed one request
    at a time) then ``default``. Answers: ``allow``, ``http500`` (the webhook itself
    fails), ``deny<code>`` (a denial carrying that HTTP code), ``slow`` (answers after the
    API server's timeout). A Service named ``probe`` is always denied with 403, so a test can
    see the configuration is in force without touching the counts."""

    def __init__(self, directory: Path) -> None:
        pki = ClusterPki(directory, "webhook")
        pair = pki.issue("webhook", "webhook", server_names=["127.0.0.1"])
        self.ca_pem = pki.ca.cert.read_bytes()
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_3
        self.tls.load_cert_chain(pair.cert, pair.key)
        self.port = free_port()
        self.plan: list[str] = []
        self.default = "allow"
        self.seen: list[tuple[str, str]] = []  # (name, answer) of every non-probe review
        self._runner: web.AppRunner | None = None

    async def _review(self, request: web.Request) -> web.StreamResponse:
        review = await request.json()
        req = review["request"]
        name = req.get("name") or req["object"]["metadata"].get("name", "")
        if name == "probe":
            return self._answer(req["uid"], allowed=False, code=403)
        action = self.plan.pop(0) if self.plan else self.default
        self.seen.append((name, action))
        if action == "http500":
            return web.Response(status=500, text="webhook broken")
        if action == "slow":
            await asyncio.sleep(TIMEOUT_SECONDS + 1.5)
            return self._answer(req["uid"], allowed=True)
        if action.startswith("deny"):
            return self._answer(req["uid"], allowed=False, code=int(action[4:]))
        return self._answer(req["uid"], allowed=True)

    @staticmethod
    def _answer(uid: str, *, allowed: bool, code: int = 200) -> web.Response:
        response: dict[str, Any] = {"uid": uid, "allowed": allowed}
        if not allowed:
            response["status"] = {"code": code, "message": f"test webhook denies ({code})"}
        return web.json_response({"apiVersion": "admission.k8s.io/v1",
                                  "kind": "AdmissionReview", "response": response})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/validate", self._review)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls,
                          reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def configuration(self, name: str, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "faults.isthmus.test",
                "clientConfig": {"url": f"https://127.0.0.1:{self.port}/validate",
                                 "caBundle": base64.b64encode(self.ca_pem).decode()},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["services"],
                           "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": {"matchLabels": {"isthmus.io/mirror": "true"}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": TIMEOUT_SECONDS,
            }],
        }


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    hook = Webhook(tmp_path)
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


async def _install(mesh: Mesh, hook: Webhook, ns: str) -> str:
    """Register the webhook in east and wait until the API server enforces it."""
    admin = mesh["east"].admin
    name = f"isthmus-test-faults-{ns}"
    await admin.create(VALIDATING_WEBHOOKS, hook.configuration(name, ns))

    async def enforced() -> bool:
        probe = {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "probe", "namespace": ns,
                              "labels": {"isthmus.io/mirror": "true"}},
                 "spec": {"ports": [{"port": 80}]}}
        try:
            await admin.create(SERVICES, probe, ns)
        except kube_errors.ForbiddenError as exc:
            return "test webhook denies (403)" in str(exc)
        await admin.delete(SERVICES, "probe", ns)
        raise AssertionError("webhook not yet in force")

    await eventually(enforced, what="webhook in force")
    return name


async def _write_condition(mesh: Mesh) -> dict[str, Any]:
    return condition(await mesh.link_status("east", "west"), "Conflict")


def _flaky(hook: Webhook) -> int:
    return sum(1 for name, _ in hook.seen if name.startswith("flaky-a"))


async def test_api_server_5xx_and_409_bounded_retries_then_condition_event_and_recovery(
    mesh: Mesh, unique: str, webhook: Webhook
) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    west, east = mesh["west"].admin, mesh["east"].admin
    config = await _install(mesh, webhook, unique)
    try:
        # 1. The webhook fails every call: the API server answers 500 "failed calling webhook".
        webhook.default = "http500"
        await export_service(west, unique, "flaky-a")

        async def failed() -> bool:
            cond = await _write_condition(mesh)
            assert cond.get("reason") == "WriteFailed", cond
            assert f"{unique}/flaky-a" in cond["message"]
            assert "failed calling webhook" in cond["message"], cond["message"]
            return True

        await eventually(failed, timeout=30, what="WriteFailed condition")
        # Bounded: 3 attempts per write for the 2 mirror Services (merged and pinned), one
        # requeue; the export was up to two catalog changes (Service, then EndpointSlice).
        await asyncio.sleep(3)
        calls = _flaky(webhook)
        await asyncio.sleep(2)
        assert _flaky(webhook) == calls, "the mirror kept retrying"
        assert 0 < calls <= 2 * 2 * 2 * 3
        events = (await east.list(EVENTS, "default"))["items"]
        assert any(e["reason"] == "WriteFailed" and f"{unique}/flaky-a" in e["note"]
                   and "failed calling webhook" in e["note"] for e in events)

        # 2. The webhook is down (connection refused): still a condition, never a crash.
        await webhook.stop()
        await export_service(west, unique, "flaky-a", ports=[("http", 81)])

        async def refused() -> bool:
            cond = await _write_condition(mesh)
            assert cond.get("reason") == "WriteFailed", cond
            assert "connection refused" in cond["message"], cond["message"]
            return True

        await eventually(refused, timeout=30, what="WriteFailed (webhook down)")
        assert mesh["east"].task is not None and not mesh["east"].task.done()

        # 3. Back up: one real 409 denial and one timeout, then it allows; the retries
        #    absorb both and the next change goes through.
        webhook.plan, webhook.default = ["deny409", "slow"], "allow"
        await webhook.start()
        await export_service(west, unique, "flaky-a", ports=[("http", 82)])

        async def imported() -> bool:
            svc = await mesh.svc("east", unique, "flaky-a-global")
            assert svc is not None and [p["port"] for p in svc["spec"]["ports"]] == [82], svc
            cond = await _write_condition(mesh)
            assert cond["status"] == "False", cond
            return True

        await eventually(imported, timeout=30, what="recovered import")
        assert not webhook.plan, "both faults were met"
        assert ("flaky-a-global", "deny409") in webhook.seen or (
            "flaky-a-west-c4", "deny409") in webhook.seen
    finally:
        with contextlib.suppress(kube_errors.NotFoundError):
            await east.delete(VALIDATING_WEBHOOKS, config)
