"""Fixtures for the gateway tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gw_helpers import Pki


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="session")
def other_pki() -> Pki:
    """Another root, same trust domain: a stranger."""
    return Pki()
