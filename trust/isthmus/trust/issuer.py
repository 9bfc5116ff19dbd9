"""Short-lived leaf SVIDs from a cluster intermediate, and when to renew them.

The mirror controller holds the cluster CA (from the ``isthmus-cluster-ca`` Secret), builds
an ``Issuer`` and writes the gateway's and its own leaves into Secrets; the gateway never
sees a CA key. ``next_renewal`` is the schedule (a pure function) and ``LeafRenewer`` the
loop that follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isthmus.errors import IsthmusError
from isthmus.logging import get_logger
from isthmus.trust.ca import (
    BACKDATE,
    CertifiedKey,
    check_can_sign,
    cluster_of,
    trust_domain_of,
    utcnow,
)
from isthmus.trust.errors import IssuanceError
from isthmus.trust.pem import PrivateKey, generate_key
from isthmus.trust.spiffe import IsthmusIdentity

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger(__name__)


LEAF_LIFETIME = dt.timedelta(hours=24)
RENEW_AT = 0.5
"""Renew when this fraction of the lifetime has passed ..."""
RENEW_JITTER = 0.1
"""... minus up to this fraction, drawn at random, so a fleet does not renew in step."""


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


class Issuer:
    """Signs leaves for one cluster from its intermediate.

    Only identities of the intermediate's own cluster and trust domain are signed.
    """

    def __init__(self, ca: CertifiedKey) -> None:
        self.ca = ca
        self.trust_domain = trust_domain_of(ca.cert)
        self.cluster = cluster_of(ca.cert)

    def identity(self, namespace: str, service_account: str) -> IsthmusIdentity:
        return IsthmusIdentity(self.trust_domain, self.cluster, namespace, service_account)

    def issue(
        self,
        namespace: str,
        service_account: str,
        *,
        lifetime: dt.timedelta = LEAF_LIFETIME,
        now: dt.datetime | None = None,
        dns_names: Sequence[str] = (),
        key: PrivateKey | None = None,
    ) -> CertifiedKey:
        """A leaf SVID for ``<namespace>/<service_account>`` in this cluster.

        The leaf never outlives the intermediate: its end is cut to the CA's.
        """
        now = now or utcnow()
        if lifetime <= dt.timedelta(0):
            raise IssuanceError("leaf lifetime must be positive")
        check_can_sign(self.ca, now)
        identity = self.identity(namespace, service_account)
        key = key or generate_key()
        not_before = max(now - BACKDATE, self.ca.cert.not_valid_before_utc)
        not_after = min(now + lifetime, self.ca.cert.not_valid_after_utc)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
        names += [x509.DNSName(name) for name in dns_names]
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "isthmus"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.cluster),
                        x509.NameAttribute(
                            NameOID.COMMON_NAME, f"{service_account}.{namespace}"[:64]
                        ),
                    ]
                )
            )
            .issuer_name(self.ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
            .sign(self.ca.key, hashes.SHA256())
        )
        leaf = CertifiedKey(cert, key, (self.ca.cert, *self.ca.chain))
        log.info(
            "leaf issued",
            spiffe_id=identity.uri,
            fingerprint=leaf.fingerprint,
            not_after=str(not_after),
            ca=self.ca.fingerprint,
        )
        return leaf


def next_renewal(
    not_before: dt.datetime, not_after: dt.datetime, rng: random.Random
) -> dt.datetime:
    """When to renew a certificate valid from ``not_before`` to ``not_after``.

    At half its lifetime, brought forward by a random part of up to a tenth of it: never
    later than half way, so half the lifetime is always left for retries. Pure given ``rng``.
    """
    lifetime = not_after - not_before
    fraction = RENEW_AT - rng.uniform(0.0, RENEW_JITTER)
    return not_before + lifetime * fraction


Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], Awaitable[None]]


class LeafRenewer:
    """Keeps one leaf fresh: issue, publish, sleep until ``next_renewal``, repeat.

    ``issue`` makes a new leaf (call the current ``Issuer``: after an intermediate rotation
    the next leaf comes from the new CA); ``publish`` writes it (a Secret). Call
    ``renew_now()`` after the intermediate changed to re-issue at once. A failing issue or
    publish is retried with backoff while the current leaf stays in use.
    """

    def __init__(
        self,
        issue: Callable[[], CertifiedKey],
        publish: Callable[[CertifiedKey], Awaitable[None]],
        *,
        current: CertifiedKey | None = None,
        rng: random.Random | None = None,
        clock: Clock = utcnow,
        backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    ) -> None:
        self._issue = issue
        self._publish = publish
        self.current = current
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._clock = clock
        self._backoff = backoff
        self._wake = asyncio.Event()

    def renew_now(self) -> None:
        self._wake.set()

    def due(self) -> dt.datetime:
        """When the current leaf is due for renewal (now if there is none)."""
        if self.current is None:
            return self._clock()
        cert = self.current.cert
        return next_renewal(cert.not_valid_before_utc, cert.not_valid_after_utc, self._rng)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._wake.wait()
        self._wake.clear()

    async def run(self, *, iterations: int | None = None) -> None:
        """Renew forever (or ``iterations`` times, for tests)."""
        done = 0
        while iterations is None or done < iterations:
            due = self.due()
            await self._wait((due - self._clock()).total_seconds())
            failures = 0
            while True:
                try:
                    leaf = self._issue()
                    await self._publish(leaf)
                except (IsthmusError, OSError) as exc:
                    delay = self._backoff[min(failures, len(self._backoff) - 1)]
                    failures += 1
                    log.warning("leaf renewal failed", error=str(exc), retry_in=delay)
                    await self._wait(delay)
                    continue
                self.current = leaf
                log.info("leaf renewed", fingerprint=leaf.fingerprint)
                break
            done += 1
