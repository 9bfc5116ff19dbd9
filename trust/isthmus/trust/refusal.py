"""Why a certificate, chain or SPIFFE ID is refused: one named reason per rule.

The reason values are stable, lower-case strings, fit for a log field and a metric label
(``isthmus_gateway_refusals_total{reason="other_root"}``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Every rule the trust layer can refuse on."""

    # SPIFFE ID syntax (SPIFFE-ID spec, section 2).
    SPIFFE_EMPTY = "spiffe_empty"
    SPIFFE_TOO_LONG = "spiffe_too_long"
    SPIFFE_NOT_ASCII = "spiffe_not_ascii"
    SPIFFE_BAD_SCHEME = "spiffe_bad_scheme"
    SPIFFE_EMPTY_TRUST_DOMAIN = "spiffe_empty_trust_domain"
    SPIFFE_UPPERCASE_TRUST_DOMAIN = "spiffe_uppercase_trust_domain"
    SPIFFE_BAD_TRUST_DOMAIN_CHAR = "spiffe_bad_trust_domain_char"
    SPIFFE_TRUST_DOMAIN_TOO_LONG = "spiffe_trust_domain_too_long"
    SPIFFE_USERINFO = "spiffe_userinfo"
    SPIFFE_PORT = "spiffe_port"
    SPIFFE_QUERY_OR_FRAGMENT = "spiffe_query_or_fragment"
    SPIFFE_EMPTY_PATH = "spiffe_empty_path"
    SPIFFE_EMPTY_SEGMENT = "spiffe_empty_segment"
    SPIFFE_TRAILING_SLASH = "spiffe_trailing_slash"
    SPIFFE_DOT_SEGMENT = "spiffe_dot_segment"
    SPIFFE_PERCENT_ENCODED = "spiffe_percent_encoded"
    SPIFFE_BAD_PATH_CHAR = "spiffe_bad_path_char"
    # The isthmus shape of the path: /cluster/<c>/ns/<n>/sa/<s>.
    NOT_ISTHMUS_ID = "not_isthmus_id"
    BAD_NAME = "bad_name"
    # X.509-SVID rules for the leaf.
    SPIFFE_NO_URI_SAN = "spiffe_no_uri_san"
    SPIFFE_TWO_URI_SANS = "spiffe_two_uri_sans"
    LEAF_IS_CA = "leaf_is_ca"
    LEAF_KEY_CERT_SIGN = "leaf_key_cert_sign"
    LEAF_CRL_SIGN = "leaf_crl_sign"
    LEAF_NO_KEY_USAGE = "leaf_no_key_usage"
    LEAF_NO_DIGITAL_SIGNATURE = "leaf_no_digital_signature"
    LEAF_EKU = "leaf_eku"
    # The chain.
    NO_CERTIFICATE = "no_certificate"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    OTHER_ROOT = "other_root"
    CHAIN_INVALID = "chain_invalid"
    INTERMEDIATE_NOT_CA = "intermediate_not_ca"
    TRUST_DOMAIN_MISMATCH = "trust_domain_mismatch"
    CLUSTER_MISMATCH = "cluster_mismatch"
    # Authorization (the caller knows which clusters are linked).
    CLUSTER_NOT_LINKED = "cluster_not_linked"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A verdict of "no": the rule broken, a human sentence, and which certificate."""

    reason: Reason
    detail: str
    subject: str | None = None

    def __str__(self) -> str:
        where = f" [{self.subject}]" if self.subject else ""
        return f"refused ({self.reason.value}): {self.detail}{where}"
