"""Kubernetes API errors, mapped in one place (``from_status``) from HTTP status and Status body.

    IsthmusError
     └── KubeError
          ├── ConfigurationError   kubeconfig/context/in-cluster config unusable
          ├── TransportError       connection refused/reset, TLS, timeout (retryable)
          └── ApiError             the API server answered with an error Status
               ├── BadRequestError      400
               ├── UnauthorizedError    401
               ├── ForbiddenError       403
               ├── NotFoundError        404
               ├── ConflictError        409  (retryable: re-read and re-apply)
               │    └── FieldManagerConflictError  server-side apply: another manager
               │                                   owns the field (not retryable)
               ├── GoneError            410  (resourceVersion too old: re-list)
               ├── InvalidError         422  (schema/validation; ``causes`` lists fields)
               ├── TooManyRequestsError 429  (retryable)
               └── ServerError          5xx  (retryable)

``RETRYABLE`` names the classes a bounded retry may repeat.
"""

from __future__ import annotations

import json
from typing import Any

from isthmus.errors import IsthmusError


class KubeError(IsthmusError):
    """Anything that went wrong talking to a Kubernetes API server."""


class ConfigurationError(KubeError):
    """No usable kubeconfig, context or in-cluster configuration."""


class TransportError(KubeError):
    """The request did not get an HTTP answer (connection, TLS, timeout)."""


class ApiError(KubeError):
    """The API server answered with an error ``Status``."""

    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}

    @property
    def causes(self) -> list[dict[str, Any]]:
        causes = self.details.get("causes", [])
        return causes if isinstance(causes, list) else []


class BadRequestError(ApiError): ...


class UnauthorizedError(ApiError): ...


class ForbiddenError(ApiError): ...


class NotFoundError(ApiError): ...


class ConflictError(ApiError): ...


class FieldManagerConflictError(ConflictError):
    """Server-side apply refused: another field manager owns a field we tried to set."""


class GoneError(ApiError): ...


class InvalidError(ApiError): ...


class TooManyRequestsError(ApiError): ...


class ServerError(ApiError): ...


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
    429: TooManyRequestsError,
}

RETRYABLE: tuple[type[KubeError], ...] = (
    TransportError,
    ConflictError,
    TooManyRequestsError,
    ServerError,
)


def is_retryable(exc: BaseException) -> bool:
    """True for faults a bounded retry may cure (not a field-manager conflict)."""
    return isinstance(exc, RETRYABLE) and not isinstance(exc, FieldManagerConflictError)


def from_status(status: int, body: bytes | str | dict[str, Any] | None) -> ApiError:
    """The one place that turns an API server error answer into an ``ApiError``."""
    data: dict[str, Any] = {}
    if isinstance(body, dict):
        data = body
    elif body:
        try:
            parsed = json.loads(body)
            data = parsed if isinstance(parsed, dict) else {}
        except (ValueError, UnicodeDecodeError):
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            data = {"message": text[:500]}
    code = int(data.get("code") or status)
    cls = _BY_STATUS.get(code, ServerError if code >= 500 else ApiError)
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    causes = details.get("causes") if isinstance(details, dict) else None
    if cls is ConflictError and isinstance(causes, list) and any(
        isinstance(c, dict) and c.get("reason") == "FieldManagerConflict" for c in causes
    ):
        cls = FieldManagerConflictError
    return cls(
        code,
        str(data.get("reason") or "Unknown"),
        str(data.get("message") or "(no message)"),
        data.get("details") if isinstance(data.get("details"), dict) else None,
    )
