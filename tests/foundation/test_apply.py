"""Server-side apply, conflicts and bounded retries against a real API server."""

from __future__ import annotations

import pytest

from isthmus.kube import errors
from isthmus.kube.apply import apply, with_retries
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import CONFIGMAPS, NAMESPACES


def _cm(ns: str, name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data}


async def test_apply_creates_then_is_idempotent(api: KubeApi, unique: str) -> None:
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    first = await apply(api, _cm(unique, "c", a="1"), field_manager="isthmus-test")
    second = await apply(api, _cm(unique, "c", a="1"), field_manager="isthmus-test")
    assert first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    managers = {m["manager"] for m in second["metadata"]["managedFields"]}
    assert managers == {"isthmus-test"}


async def test_field_owned_by_another_manager_is_a_conflict(api: KubeApi, unique: str) -> None:
    """We never silently take a field someone else owns: 409, not retried."""
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    await apply(api, _cm(unique, "c", a="theirs"), field_manager="someone-else")
    with pytest.raises(errors.FieldManagerConflictError) as info:
        await apply(api, _cm(unique, "c", a="ours"), field_manager="isthmus-test", attempts=3)
    assert info.value.status == 409
    got = await api.get(CONFIGMAPS, "c", unique)
    assert got["data"]["a"] == "theirs"


async def test_stale_update_conflicts_and_a_retry_with_reread_succeeds(
    api: KubeApi, unique: str
) -> None:
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    created = await api.create(CONFIGMAPS, _cm(unique, "c", n="0"), namespace=unique)
    stale = dict(created)
    await api.replace(CONFIGMAPS, {**created, "data": {"n": "1"}}, namespace=unique)
    with pytest.raises(errors.ConflictError) as info:
        await api.replace(CONFIGMAPS, {**stale, "data": {"n": "x"}}, namespace=unique)
    assert not isinstance(info.value, errors.FieldManagerConflictError)
    assert errors.is_retryable(info.value)

    attempts = 0

    async def increment() -> dict[str, object]:
        nonlocal attempts
        attempts += 1
        current = await api.get(CONFIGMAPS, "c", unique)
        if attempts == 1:  # someone else writes between our read and our write
            await api.replace(CONFIGMAPS, {**current, "data": {"n": "5"}}, namespace=unique)
        n = int(current["data"]["n"])
        return await api.replace(
            CONFIGMAPS, {**current, "data": {"n": str(n + 1)}}, namespace=unique
        )

    result = await with_retries(increment, backoff=Backoff(initial=0.01), attempts=3)
    assert attempts == 2
    assert result["data"] == {"n": "6"}


async def test_lasting_errors_give_up_after_bounded_attempts(api: KubeApi) -> None:
    calls = 0

    async def always_5xx() -> None:
        nonlocal calls
        calls += 1
        raise errors.ServerError(503, "ServiceUnavailable", "try later")

    with pytest.raises(errors.ServerError):
        await with_retries(always_5xx, attempts=4, backoff=Backoff(initial=0.001))
    assert calls == 4


async def test_not_found_is_typed(api: KubeApi, unique: str) -> None:
    with pytest.raises(errors.NotFoundError):
        await api.get(CONFIGMAPS, "missing", unique)


async def test_answers_are_uncompressed_unless_asked(api: KubeApi, unique: str) -> None:
    """The API server gzips answers over 128 KiB to a client that accepts it; isthmus's
    clients do not by default (the control plane's own setting), and can opt in."""
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    blob = "x" * 60_000  # three of these make a LIST answer over the 128 KiB threshold
    for i in range(3):
        await api.create(CONFIGMAPS, _cm(unique, f"c{i}", blob=blob), namespace=unique)
    encodings = []
    for compression in (False, True):
        api.compression = compression
        response = await api._send("GET", CONFIGMAPS.path(unique))
        try:
            body = await response.read()  # decompressed by aiohttp either way
        finally:
            response.release()
        assert body.count(blob.encode()) == 3
        encodings.append(response.headers.get("Content-Encoding"))
    api.compression = False
    assert encodings == [None, "gzip"]
