"""isthmus.devcluster."""
