"""isthmus.trust: the shared root, per-cluster intermediates and SPIFFE identities."""
