"""API errors are mapped in one place; backoff is bounded and jittered."""

from __future__ import annotations

import json
import random

import pytest

from isthmus.errors import IsthmusError
from isthmus.kube import errors
from isthmus.kube.backoff import Backoff


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        pytest.param(404, {"code": 404, "reason": "NotFound", "message": "x"}, errors.NotFoundError, id="404"),
        pytest.param(409, {"code": 409, "reason": "Conflict", "message": "modified"}, errors.ConflictError, id="409"),
        pytest.param(409, {"code": 409, "reason": "Conflict", "message": "m", "details": {"causes": [{"reason": "FieldManagerConflict"}]}}, errors.FieldManagerConflictError, id="409-ssa"),
        pytest.param(410, {"code": 410, "reason": "Expired", "message": "too old"}, errors.GoneError, id="410"),
        pytest.param(422, {"code": 422, "reason": "Invalid", "message": "bad"}, errors.InvalidError, id="422"),
        pytest.param(503, b"<html>busy</html>", errors.ServerError, id="503-not-json"),
        pytest.param(418, None, errors.ApiError, id="unknown-status"),
        pytest.param(200, {"code": 410, "reason": "Expired"}, errors.GoneError, id="watch-error-event-code-wins"),
    ],
)
def test_from_status(status: int, body: object, cls: type[errors.ApiError]) -> None:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    err = errors.from_status(status, raw)  # type: ignore[arg-type]
    assert type(err) is cls
    assert isinstance(err, IsthmusError)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        pytest.param(errors.TransportError("reset"), True, id="transport"),
        pytest.param(errors.ServerError(500, "x", "y"), True, id="5xx"),
        pytest.param(errors.ConflictError(409, "x", "y"), True, id="409"),
        pytest.param(errors.FieldManagerConflictError(409, "x", "y"), False, id="409-ssa"),
        pytest.param(errors.ForbiddenError(403, "x", "y"), False, id="403"),
        pytest.param(errors.InvalidError(422, "x", "y"), False, id="422"),
    ],
)
def test_retryable(exc: Exception, retryable: bool) -> None:
    assert errors.is_retryable(exc) is retryable


def test_backoff_grows_to_a_cap_with_bounded_jitter() -> None:
    b = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.2)
    rng = random.Random(1)
    delays = [b.delay(i, rng) for i in range(10)]
    for i, d in enumerate(delays):
        base = min(2.0, 0.1 * 2**i)
        assert base * 0.8 <= d <= base * 1.2
    assert max(delays) <= 2.4
