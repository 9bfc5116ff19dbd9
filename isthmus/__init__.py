"""isthmus: multi-cluster service federation for Kubernetes.

The import root. Components live in subpackages mapped from the repository's top-level
folders: ``isthmus.mirror`` (mirror/), ``isthmus.gateway`` (gateway/), ``isthmus.dns`` (dns/)
and ``isthmus.trust`` (trust/). The shared core lives here: the CLI, the Kubernetes client
layer (``isthmus.kube``), the CRD models (``isthmus.api``), settings and logging.
"""

# First of all: grpc reads its TLS cipher list when it is imported, and this pins it so
# that TLS 1.2 is impossible for every gRPC connection of the process (isthmus.grpc_tls).
from isthmus import grpc_tls as _grpc_tls  # noqa: F401

__version__ = "0.1.0"
