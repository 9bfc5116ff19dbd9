"""structlog set-up: one JSON object per line on stderr, for every component.

Secrets never reach a log line: ``redact_secrets`` runs last before rendering and replaces
the value of any key that names a secret, and any value that carries a PEM private key.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset(
    {"key", "private_key", "key_pem", "password", "token", "secret", "authorization", "ca_key"}
)
_PEM_PRIVATE = "PRIVATE KEY-----"
REDACTED = "[redacted]"


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: blank out secret-bearing fields wherever they appear."""
    for name, value in list(event_dict.items()):
        secret_value = isinstance(value, (str, bytes)) and _is_pem_key(value)
        if name.lower() in _SECRET_KEYS or secret_value:
            event_dict[name] = REDACTED
    return event_dict


def _is_pem_key(value: str | bytes) -> bool:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return _PEM_PRIVATE in text


def configure(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog (and route stdlib logging through the same renderer)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(message)s"
    )


def get_logger(name: str) -> Any:
    """A lazily bound logger carrying ``component=<name>``."""
    # Lazy: the logger is built on first use, so configure() may run after import.
    return structlog.get_logger(component=name)
