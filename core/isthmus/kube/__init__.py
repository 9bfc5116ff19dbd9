"""isthmus.kube."""
