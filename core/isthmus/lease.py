"""Pure: reading a coordination.k8s.io/v1 Lease spec (the mirror's leader election, and
``isthmus check``'s report of it)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def parse_time(value: str | None) -> dt.datetime | None:
    """A Lease ``renewTime``/``acquireTime`` (MicroTime); None when absent. A malformed
    value raises ``ValueError``."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def last_renewed(spec: dict[str, Any]) -> dt.datetime | None:
    return parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))


def lease_free(spec: dict[str, Any], identity: str, now: dt.datetime) -> bool:
    """May ``identity`` take (or keep) a Lease with this spec at ``now``?"""
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == identity:
        return True
    renewed = last_renewed(spec)
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or renewed + dt.timedelta(seconds=duration) < now
