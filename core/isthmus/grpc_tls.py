"""Pin grpc to TLS 1.3 for the whole process, explicitly, before grpc is imported.

grpc core reads ``GRPC_SSL_CIPHER_SUITES`` once, when the ``grpc`` module is imported, and
hands it to BoringSSL's cipher list, which governs TLS 1.2 and below only. Setting it to a
single PSK suite (which grpc can never use: it installs no pre-shared-key callback) leaves
TLS 1.2 with no cipher in either direction, while TLS 1.3 is untouched; see
``isthmus.mirror.grpc_tls`` for the reasoning and the tests.

This changes process state (an environment variable), so it is not done on import: each
entry point calls ``pin_tls13()`` first thing (``isthmus.cli.main``, the test session's
conftest). Code that serves or dials the catalog calls ``isthmus.mirror.require_tls13()``,
which refuses to run when the pin came too late. Standard library only, so it can run
before anything else is imported.
"""

from __future__ import annotations

import os
import sys

CIPHER_SUITES_ENV = "GRPC_SSL_CIPHER_SUITES"
TLS12_CIPHER_SUITES = "PSK-AES128-CBC-SHA"

_pinned_in_time = False


def pin_tls13() -> bool:
    """Set the variable; True if grpc will read our value (it was not imported before, or
    the process was started with our value already set)."""
    global _pinned_in_time  # noqa: PLW0603 -- one process-wide fact, set once
    ours_already = os.environ.get(CIPHER_SUITES_ENV) == TLS12_CIPHER_SUITES
    os.environ[CIPHER_SUITES_ENV] = TLS12_CIPHER_SUITES
    _pinned_in_time = _pinned_in_time or ours_already or "grpc" not in sys.modules
    return _pinned_in_time


def pinned() -> bool:
    """Whether grpc in this process refuses TLS 1.2 (``pin_tls13`` ran before grpc loaded)."""
    return _pinned_in_time and os.environ.get(CIPHER_SUITES_ENV) == TLS12_CIPHER_SUITES
