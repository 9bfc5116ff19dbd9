"""isthmus.gateway: the mTLS east-west gateway (inbound :15443, per-service outbound listeners)."""
