"""isthmus.mirror: the service-mirror controller (export catalog, import of peers' services)."""
