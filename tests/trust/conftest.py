"""Fixtures for the trust tests: a PKI per test module (key generation is cheap)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from trust_helpers import Pki


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="module")
def other_pki() -> Pki:
    """A second, unrelated root of the same trust domain (an attacker's, or a stranger's)."""
    return Pki()


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """CLI tests configure structlog (level, stderr); put the previous set-up back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
