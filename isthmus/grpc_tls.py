"""Pin grpc to TLS 1.3 for the whole process: imported by ``isthmus/__init__.py`` first.

grpc core reads ``GRPC_SSL_CIPHER_SUITES`` once, when the ``grpc`` module is imported, and
hands it to BoringSSL's cipher list, which governs TLS 1.2 and below only. Setting it to a
single PSK suite (which grpc can never use: it installs no pre-shared-key callback) leaves
TLS 1.2 with no cipher in either direction, while TLS 1.3 is untouched; see
``isthmus.mirror.grpc_tls`` for the reasoning and the tests.

It lives at the package root, with no imports beyond the standard library, because it must
run before anything imports ``grpc``: every isthmus process (and the test session, through
its conftest) imports ``isthmus`` first, while a module that imports both puts the
third-party ``grpc`` before ``isthmus.mirror`` in its import block.
"""

from __future__ import annotations

import os
import sys

CIPHER_SUITES_ENV = "GRPC_SSL_CIPHER_SUITES"
TLS12_CIPHER_SUITES = "PSK-AES128-CBC-SHA"


def _pin() -> bool:
    """Set the variable; True if grpc will read our value (it was not imported before)."""
    ours_already = os.environ.get(CIPHER_SUITES_ENV) == TLS12_CIPHER_SUITES
    os.environ[CIPHER_SUITES_ENV] = TLS12_CIPHER_SUITES
    return ours_already or "grpc" not in sys.modules


PINNED = _pin()
