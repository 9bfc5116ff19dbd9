"""Jittered exponential backoff, as a pure schedule (easy to test) plus one async sleep."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays grow by ``factor`` from ``initial`` up to ``maximum``; each is spread by
    ±``jitter`` (a fraction) so many clients that lost one API server do not return in step."""

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (0-based)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + spread))

    async def sleep(self, attempt: int) -> None:
        await asyncio.sleep(self.delay(attempt))
