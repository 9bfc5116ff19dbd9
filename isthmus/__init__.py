"""isthmus: multi-cluster service federation for Kubernetes.

The import root. Components live in subpackages mapped from the repository's top-level
folders: ``isthmus.mirror`` (mirror/), ``isthmus.gateway`` (gateway/), ``isthmus.dns`` (dns/)
and ``isthmus.trust`` (trust/). The shared core lives here: the CLI, the Kubernetes client
layer (``isthmus.kube``), the CRD models (``isthmus.api``), settings and logging.
"""

__version__ = "0.1.0"
