"""Which certificates expire soon, and which already have (pure; used by ``check``).

Exit codes of ``isthmus trust check`` follow the worst finding:

    0  every certificate valid for longer than the warning window
    3  at least one expires within the window or is not yet valid
    1  at least one has expired (or input could not be read): the error names it

The window is 30 days, or a third of the certificate's lifetime if that is shorter: a
24-hour leaf is renewed at about half its life, so it only deserves a warning once less
than 8 hours are left (its renewal is then overdue), not for its whole life.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from isthmus.trust.pem import describe_name

WARN_WITHIN = dt.timedelta(days=30)
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_WARNING = 3


class Level(enum.IntEnum):
    OK = 0
    WARNING = 1
    ERROR = 2


def format_delta(delta: dt.timedelta) -> str:
    """A short human duration: ``364d 23h``, ``5h 3m``, ``42s``."""
    seconds = int(abs(delta.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


@dataclass(frozen=True)
class Finding:
    label: str
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    level: Level
    message: str

    def line(self) -> str:
        tag = {Level.OK: "ok", Level.WARNING: "WARNING", Level.ERROR: "ERROR"}[self.level]
        return f"{tag:<8} {self.label}: {self.subject}: {self.message}"


def check_one(
    label: str, cert: x509.Certificate, now: dt.datetime, warn_within: dt.timedelta = WARN_WITHIN
) -> Finding:
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    left = not_after - now
    window = min(warn_within, (not_after - not_before) / 3)

    def finding(level: Level, message: str) -> Finding:
        return Finding(label, describe_name(cert), not_before, not_after, level, message)

    if now > not_after:
        return finding(Level.ERROR, f"expired {format_delta(left)} ago ({not_after.isoformat()})")
    if now < not_before:
        return finding(Level.WARNING, f"not valid until {not_before.isoformat()}")
    if left < window:
        return finding(Level.WARNING, f"expires in {format_delta(left)} ({not_after.isoformat()})")
    return finding(Level.OK, f"valid for {format_delta(left)} ({not_after.isoformat()})")


def check_expiry(
    certs: Iterable[tuple[str, x509.Certificate]],
    now: dt.datetime,
    warn_within: dt.timedelta = WARN_WITHIN,
) -> list[Finding]:
    return [check_one(label, cert, now, warn_within) for label, cert in certs]


def exit_code(findings: Iterable[Finding]) -> int:
    worst = max((f.level for f in findings), default=Level.OK)
    return {Level.OK: EXIT_OK, Level.WARNING: EXIT_WARNING, Level.ERROR: EXIT_ERROR}[worst]
