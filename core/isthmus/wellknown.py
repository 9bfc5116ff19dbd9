"""Facts every part of isthmus shares, each defined once: ports, the API version, and the
trust-domain rule. The manifests repeat the ports and the API version as YAML; a test
(tests/foundation/test_wellknown.py) keeps them equal to these.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field

GATEWAY_PORT = 15443
"""The east-west gateway's one exposed port (mTLS, TLS 1.3): peers and their mirrors use it."""

CATALOG_PORT = 15441
"""The mirror's gRPC catalog server, inside the cluster; peers reach it through the gateway."""

API_GROUP: Final = "isthmus.io"
API_VERSION_NAME: Final = "v1alpha1"
API_VERSION: Final = "isthmus.io/v1alpha1"
"""apiVersion of the custom resources (Link, GlobalService): group/version, spelled out so
that type checkers see the literal."""

MAX_TRUST_DOMAIN_BYTES = 255
TRUST_DOMAIN_CHARS = re.compile(r"[a-z0-9._-]+")
"""A SPIFFE trust domain: lower-case letters, digits, '.', '-', '_'; at most 255 bytes.
``isthmus.trust.spiffe.validate_trust_domain`` says which part of the rule a name breaks."""

TrustDomain = Annotated[
    str, Field(pattern=rf"^{TRUST_DOMAIN_CHARS.pattern}$", max_length=MAX_TRUST_DOMAIN_BYTES)
]
"""The same rule for pydantic models (CRDs, the cluster's identity ConfigMap)."""
