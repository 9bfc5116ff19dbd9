"""A short-lived memo of ``verify_peer`` verdicts, so a burst of tunnels from the same peer
certificate pays for path building once.

Only acceptances are remembered, keyed by the exact chain the peer sent and the bundle in
use (a rotated bundle never reuses a verdict made under the old one), for at most ``ttl``
seconds and never past the chain's ``not_after``. Refusals are always recomputed. The
certificate logic itself stays in ``isthmus.trust``.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time

from isthmus.trust import PeerIdentity, Refusal, TrustBundle, peer_chain_der, verify_peer

_Key = tuple[tuple[bytes, ...], tuple[str, ...]]


class PeerVerdicts:
    def __init__(self, ttl: float = 10.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._memo: dict[_Key, tuple[float, PeerIdentity]] = {}

    def verify(self, endpoint: ssl.SSLObject, bundle: TrustBundle) -> PeerIdentity | Refusal:
        chain = tuple(peer_chain_der(endpoint))
        key = (chain, bundle.fingerprints)
        now = time.monotonic()
        hit = self._memo.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        wall = dt.datetime.now(dt.UTC)
        verdict = verify_peer(bundle, list(chain), wall)
        if isinstance(verdict, PeerIdentity) and chain:
            left = (verdict.not_after - wall).total_seconds()
            if left > 0:
                if len(self._memo) >= self.size:
                    self._memo.clear()
                self._memo[key] = (now + min(self.ttl, left), verdict)
        return verdict
