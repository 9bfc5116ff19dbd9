"""Fixtures for the trust tests: a PKI per test module (key generation is cheap)."""

from __future__ import annotations

import pytest
from trust_helpers import Pki


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="module")
def other_pki() -> Pki:
    """A second, unrelated root of the same trust domain (an attacker's, or a stranger's)."""
    return Pki()
