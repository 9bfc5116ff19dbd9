"""isthmus.api."""
