"""Pure decisions: may an established tunnel, or a stream open on it, go on?

A peer was verified once, at its handshake; a stream was authorized once, at its OPEN.
The state they were checked against changes: roots leave the bundle, certificates reach
their end, Links are removed, Services unexported, ``export-to`` narrowed. The gateway
asks these functions again when the routing snapshot or the bundle changes, on a timer
(expiry), and before each OPEN, and closes what they refuse.

The peer part needs no path building: the chain was verified at the handshake against a
bundle root, so the verdict can only change if that root left the bundle or the clock
passed the chain's earliest ``not_after``. Reasons (metric label and log field)::

    root_removed               the root the peer's chain leads to is no longer trusted
    peer_expired               a certificate of the peer's chain is past its not_after
    link_removed               no Link for the peer's cluster (or another trust domain)
    unexported                 the Service (or that port) is no longer exported
    export_to_excludes_caller  export-to no longer includes the peer's cluster
    pod_gone                   a pod target is no longer a named ready pod of the export
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from isthmus.gateway.snapshot import Snapshot
from isthmus.gateway.wire import Target
from isthmus.trust import PeerIdentity, TrustBundle


@dataclass(frozen=True)
class OpenStream:
    """What a stream was authorized for: who asked, and for which target."""

    peer: PeerIdentity
    target: Target


def peer_revoked(peer: PeerIdentity, bundle: TrustBundle, now: dt.datetime) -> str | None:
    """Why a verified peer would now be refused by ``bundle`` at ``now``, or None."""
    if peer.root_fingerprint not in bundle.fingerprints:
        return "root_removed"
    if now > peer.not_after:
        return "peer_expired"
    return None


def link_revoked(snapshot: Snapshot, peer: PeerIdentity) -> str | None:
    """Why the peer's cluster is no longer linked, or None."""
    link = snapshot.links.get(peer.cluster)
    if link is None or link.trust_domain != peer.identity.trust_domain:
        return "link_removed"
    return None


def stream_revoked(
    snapshot: Snapshot, bundle: TrustBundle, now: dt.datetime, stream: OpenStream
) -> str | None:
    """Why an open inbound stream must be cut now, or None to leave it alone.

    Only a lost right cuts a stream: a backend that left the ready set, or a Service
    whose other ports changed, leaves it running."""
    why = peer_revoked(stream.peer, bundle, now) or link_revoked(snapshot, stream.peer)
    if why is not None:
        return why
    target = stream.target
    if target.is_catalog:
        return None  # only a mirror identity opened it, and that cannot change
    export = snapshot.exports.get((target.namespace, target.service))
    if export is None or not export.has_port(target.port):
        return "unexported"
    if not export.allows(stream.peer.cluster):
        return "export_to_excludes_caller"
    if target.pod and (not export.headless or export.pods.find(target.pod) is None):
        return "pod_gone"  # the name no longer stands for that pod (see the decision)
    return None
