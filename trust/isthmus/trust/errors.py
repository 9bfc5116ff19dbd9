"""Every error the trust layer raises on purpose.

    isthmus.errors.IsthmusError
     └── TrustError                  (anything about certificates, keys, identities)
          ├── SpiffeIdError          (a string is not an acceptable SPIFFE ID; .reason)
          ├── MaterialError          (PEM, key or manifest input that cannot be used)
          │    └── RootExistsError   (``init`` would overwrite a root; pass --force)
          ├── IssuanceError          (a CA cannot sign what was asked: expired, wrong kind)
          ├── PeerRefused            (a peer chain failed verification; .refusal)
          ├── ExpiryError            (``check`` found a certificate that has expired)
          └── ApplyError             (writing to a cluster is not possible)

A refusal from the verifier is normally *returned* (``verify_peer`` gives a ``Refusal``
value, because refusing a peer is an ordinary outcome, not a fault); ``PeerRefused`` is
for callers who prefer an exception (``require_peer``). Both carry a ``Reason``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from isthmus.errors import IsthmusError

if TYPE_CHECKING:
    from isthmus.trust.refusal import Reason, Refusal


class TrustError(IsthmusError):
    """Base of the trust layer's errors."""


class SpiffeIdError(TrustError, ValueError):
    """A SPIFFE ID (or an isthmus identity) failed validation; ``reason`` says which rule."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{detail} ({reason.value})")
        self.reason = reason
        self.detail = detail


class MaterialError(TrustError):
    """Certificate, key, bundle or manifest input that cannot be used."""


class RootExistsError(MaterialError, FileExistsError):
    """A root already exists where ``init`` would write one."""


class IssuanceError(TrustError):
    """A CA refuses to sign what was asked (expired CA, lifetime beyond the CA, ...)."""


class PeerRefused(TrustError):
    """A peer's certificate chain was refused; ``refusal`` holds the reason."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class ExpiryError(TrustError):
    """One or more certificates have expired (``isthmus trust check``)."""


class ApplyError(TrustError):
    """Manifests cannot be applied to a cluster (no client layer, or it failed)."""
