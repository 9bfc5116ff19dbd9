"""isthmus.dns: the authoritative responder for ``<svc>.<ns>.global`` names."""
