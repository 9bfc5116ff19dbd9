"""The root of every isthmus error.

    IsthmusError
     ├── isthmus.kube.errors.KubeError        (API server and transport faults)
     ├── isthmus.trust.errors.TrustError      (certificates, identities)
     ├── isthmus.dns.errors.DnsError          (responder)
     ├── isthmus.gateway.errors.GatewayError  (east-west proxy)
     └── isthmus.mirror.errors.MirrorError    (service mirror)

Each package keeps one tree below this root and draws it in its own ``errors`` module, so
a caller can catch a whole package with one class and the CLI can turn any of them into a
clean message and a non-zero exit.
"""


class IsthmusError(Exception):
    """Base of every error isthmus raises on purpose."""


class ConfigError(IsthmusError):
    """Settings or command-line input that cannot be used; the message says which."""
