"""The catalog client: follow one peer's catalog, forever, and report what happens.

How the channel reaches the peer is a ``Dialer``'s business: ``DirectDialer`` dials an
address over mTLS (today, and in tests); a gateway dialer will carry the same channel
through the local gateway's tunnel to the peer's inbound port. Either way the server name
is pinned to ``isthmus-mirror.isthmus-system.<cluster>.isthmus`` so only that cluster's
mirror is accepted.

``follow`` resumes from the last (epoch, version) it saw after a reconnect, unless the
importer has forgotten what it held (``ResumePoint.forget``: a stale peer past its grace
period), which asks for a fresh snapshot instead. Entries that do not validate
(``catalog_validation``) are dropped one by one, never the whole batch, and reported with
the update that carried them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from isthmus.kube.backoff import Backoff
from isthmus.logging import get_logger
from isthmus.mirror.catalog_server import WATCH_METHOD
from isthmus.mirror.catalog_validation import Rejected, entry_from_message, key_from_message
from isthmus.mirror.errors import CatalogError
from isthmus.mirror.grpc_tls import require_tls13
from isthmus.mirror.model import CatalogEntry, LinkInfo, ServiceKey
from isthmus.mirror.names import mirror_server_name
from isthmus.mirror.wire import pb

log = get_logger("isthmus.mirror.catalog_client")

@dataclass
class ResumePoint:
    """Where ``follow`` resumes a peer's Watch after a reconnect. The importer ``forget``s it
    when it drops the mirrors it had from that peer: resuming would then bring only the
    changes, and the unchanged services would never come back."""

    epoch: str = ""
    version: int = 0
    generation: int = 0  # bumped by forget(): a stream opened before it is not trusted

    def forget(self) -> None:
        self.epoch, self.version = "", 0
        self.generation += 1


class Dialer(Protocol):
    """Makes the gRPC channel that reaches one linked peer's catalog."""

    def channel(self, link: LinkInfo) -> Any: ...


class DirectDialer:
    """Dial the peer over mTLS at ``address(link)`` (default: the Link's first address)."""

    def __init__(
        self,
        credentials: Callable[[], Any],
        address: Callable[[LinkInfo], str] | None = None,
    ) -> None:
        self._credentials = credentials
        self._address = address or (lambda link: f"{link.gateway_host}:{link.gateway_port}")

    def channel(self, link: LinkInfo) -> Any:
        require_tls13()
        return grpc.aio.secure_channel(
            self._address(link), self._credentials(), options=channel_options(link.cluster)
        )


def channel_options(cluster: str) -> list[tuple[str, Any]]:
    """gRPC options for a catalog channel to ``cluster``'s mirror (any dialer)."""
    return [
        ("grpc.ssl_target_name_override", mirror_server_name(cluster)),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]


@dataclass(frozen=True)
class Snapshot:
    cluster: str
    epoch: str
    version: int
    entries: dict[ServiceKey, CatalogEntry]
    rejected: tuple[Rejected, ...] = ()  # entries that did not validate (catalog_validation)


@dataclass(frozen=True)
class Delta:
    cluster: str
    epoch: str
    version: int
    upserts: tuple[CatalogEntry, ...]
    removed: tuple[ServiceKey, ...]
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class Heartbeat:
    cluster: str
    version: int


@dataclass(frozen=True)
class Down:
    cluster: str
    reason: str


CatalogUpdate = Snapshot | Delta | Heartbeat | Down


def _entries(cluster: str, services: Any) -> tuple[list[CatalogEntry], tuple[Rejected, ...]]:
    """The valid entries of one message, and the rejected ones (each logged)."""
    out: list[CatalogEntry] = []
    rejected: list[Rejected] = []
    for s in services:
        entry = entry_from_message(s)
        if isinstance(entry, Rejected):
            log.warning("dropping invalid catalog entry", peer=cluster,
                        namespace=entry.namespace, name=entry.name, reason=entry.reason)
            rejected.append(entry)
            continue
        out.append(entry)
    return out, tuple(rejected)


def describe_rpc_error(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        details = (exc.details() or "").splitlines()[0][:300]
        return f"{exc.code().name}: {details}"
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED: no message from the peer within the idle timeout"
    return f"{type(exc).__name__}: {exc}"


async def follow(
    link: LinkInfo,
    dialer: Dialer,
    report: Callable[[CatalogUpdate], None],
    *,
    idle_timeout: float = 30.0,
    backoff: Backoff | None = None,
    iterations: int | None = None,
    resume: ResumePoint | None = None,
) -> None:
    """Keep a Watch open on ``link``'s peer; call ``report`` for every update and outage."""
    backoff = backoff or Backoff(initial=0.2, maximum=10.0)
    at = resume or ResumePoint()
    attempt = 0
    done = 0
    while iterations is None or done < iterations:
        done += 1
        channel = dialer.channel(link)
        generation = at.generation
        try:
            call = channel.unary_stream(
                WATCH_METHOD,
                request_serializer=pb.WatchRequest.SerializeToString,
                response_deserializer=pb.CatalogEvent.FromString,
            )(pb.WatchRequest(epoch=at.epoch, version=at.version))
            iterator = call.__aiter__()
            while True:
                async with asyncio.timeout(idle_timeout):
                    msg = await iterator.__anext__()
                attempt = 0
                if at.generation != generation and msg.kind != pb.CatalogEvent.SNAPSHOT:
                    # forgotten while this stream was opening: what it resumes from is gone
                    log.info("resume point forgotten, asking for a snapshot", peer=link.cluster)
                    call.cancel()
                    break
                if msg.cluster and msg.cluster != link.cluster:
                    # only that cluster's mirror certificate is accepted (the pinned name),
                    # so this is a peer naming another cluster: nothing it says is used
                    raise CatalogError(f"the catalog names cluster {msg.cluster[:63]!r}, "
                                       f"not {link.cluster!r}")
                if msg.kind == pb.CatalogEvent.SNAPSHOT:
                    at.epoch, at.version, generation = msg.epoch, msg.version, at.generation
                    valid, rejected = _entries(link.cluster, msg.services)
                    report(Snapshot(link.cluster, msg.epoch, msg.version, {e.key: e for e in valid},
                                    rejected))
                elif msg.kind == pb.CatalogEvent.DELTA:
                    at.epoch, at.version = msg.epoch, msg.version
                    removed = tuple(k for k in map(key_from_message, msg.removed)
                                    if k is not None)
                    valid, rejected = _entries(link.cluster, msg.services)
                    report(Delta(link.cluster, msg.epoch, msg.version, tuple(valid), removed,
                                 rejected))
                elif msg.kind == pb.CatalogEvent.HEARTBEAT:
                    report(Heartbeat(link.cluster, msg.version))
        except StopAsyncIteration:
            report(Down(link.cluster, "UNAVAILABLE: the peer closed the catalog stream"))
        except (grpc.aio.AioRpcError, TimeoutError, OSError, CatalogError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # grpc turns our own cancellation into a CANCELLED status: stop for real
                raise asyncio.CancelledError from exc
            report(Down(link.cluster, describe_rpc_error(exc)))
        finally:
            await channel.close(grace=None)
        delay = backoff.delay(attempt)
        attempt += 1
        await asyncio.sleep(delay)
