"""Batched UDP: up to ``BATCH`` datagrams per ``recvmmsg`` and per ``sendmmsg`` (Linux).

Why: on the fast path the answer costs about half a microsecond of Python, while each
datagram through asyncio costs a readiness wake-up, a ``recvfrom`` and a ``sendto``, an
address tuple and a callback: the socket layer, not the DNS logic, was the ceiling. knot
amortizes the same cost with ``recvmmsg``/``sendmmsg``; so does this module, through
``ctypes`` from the C library (no compiler, no extra dependency).

How: the socket stays non-blocking and registered with the event loop (``add_reader``), so
the loop, the TCP server and the snapshot feed keep running in the same thread. When it is
readable, ``drain`` receives a batch into preallocated buffers, answers each datagram in
place (the reply overwrites the query in its slot, so the kernel's peer address is reused
as is), and sends the batch back with one call. It loops while batches come back full, but
at most ``MAX_ROUNDS`` times per wake-up so that TCP clients and snapshot updates are not
starved under a flood.

Tier-1 cache hits (exact question bytes seen before) are answered inline, without a
function call; everything else goes through ``Responder.handle`` exactly as the asyncio
path does, so every verdict (FORMERR, BADVERS, TC=1, no reply for QR=1) is the same code.
The tier-1 table is read once per batch: a batch runs to completion inside one loop
callback, so a snapshot swap (which replaces the table) can never land in the middle of one.

Replies that the kernel will not take right now (send buffer full) are dropped and counted
(``udp_send_dropped``): a DNS client retries, and queuing them would let a flood grow memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import sys
from typing import Any

from isthmus.dns.responder import Responder
from isthmus.logging import get_logger

log = get_logger("isthmus.dns.udp_batch")

BATCH = 64  # datagrams per system call; dnsperf-like floods fill it, a quiet resolver does not
SLOT = 65536  # bytes per datagram buffer: any UDP payload fits, so nothing is ever truncated
NAME = 128  # bytes for the peer's address (sockaddr_in6 needs 28)
MAX_ROUNDS = 16  # full batches per wake-up before yielding to the event loop
MSG_DONTWAIT = 0x40
SNDBUF = 4 * 1024 * 1024


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("len", ctypes.c_uint32))


def _libc() -> Any | None:
    """The C library if it has both calls (Linux with glibc or musl), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recv.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                     ctypes.c_void_p)
    send.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    recv.restype = send.restype = ctypes.c_int
    return libc


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class BatchedUdp:
    """Answers datagrams on ``sock`` in batches; call ``drain`` whenever it is readable."""

    def __init__(self, sock: socket.socket, responder: Responder) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg are not available here")
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        self.sock = sock
        self.responder = responder
        self._fd = sock.fileno()
        self._recv = _LIBC.recvmmsg
        self._send = _LIBC.sendmmsg
        self._data = ctypes.create_string_buffer(BATCH * SLOT)
        self._names = ctypes.create_string_buffer(BATCH * NAME)
        self._iov = (_Iovec * BATCH)()
        self._hdr = (_Mmsghdr * BATCH)()
        data, names = ctypes.addressof(self._data), ctypes.addressof(self._names)
        for i in range(BATCH):
            self._iov[i].base = data + i * SLOT
            self._iov[i].len = SLOT
            hdr = self._hdr[i].hdr
            hdr.name = names + i * NAME
            hdr.namelen = NAME
            hdr.iov = ctypes.addressof(self._iov[i])
            hdr.iovlen = 1
        # recvmmsg overwrites namelen, len and flags, and replies shorten the iov lengths:
        # one memmove from these pristine copies resets a whole batch.
        self._hdr_template = bytes(self._hdr)
        self._iov_template = bytes(self._iov)
        self._hdr_addr = ctypes.addressof(self._hdr)
        self._msize = ctypes.sizeof(_Mmsghdr)
        # Index arithmetic on flat views is far cheaper than ctypes attribute access.
        self._view = memoryview(self._data).cast("B")
        self._lens = memoryview(self._hdr).cast("B").cast("I")
        self._iov_lens = memoryview(self._iov).cast("B").cast(
            "Q" if ctypes.sizeof(ctypes.c_size_t) == 8 else "I")
        u32, word = 4, ctypes.sizeof(ctypes.c_size_t)
        self._len_index = [(i * self._msize + _Mmsghdr.len.offset) // u32 for i in range(BATCH)]
        self._iov_index = [(i * ctypes.sizeof(_Iovec) + _Iovec.len.offset) // word
                           for i in range(BATCH)]
        self.batches = 0

    def drain(self) -> None:
        """Answer what is queued on the socket, up to ``MAX_ROUNDS`` full batches."""
        for _round in range(MAX_ROUNDS):
            n = self._recv(self._fd, self._hdr_addr, BATCH, MSG_DONTWAIT, None)
            if n <= 0:
                if n < 0:
                    self._receive_error(ctypes.get_errno())
                return
            try:
                self._answer(n)
            finally:
                ctypes.memmove(self._hdr, self._hdr_template, len(self._hdr_template))
                ctypes.memmove(self._iov, self._iov_template, len(self._iov_template))
            if n < BATCH:
                return

    def _answer(self, n: int) -> None:
        responder = self.responder
        raw = responder.raw_udp_cache()
        view, lens, iov_lens = self._view, self._lens, self._iov_lens
        len_index, iov_index = self._len_index, self._iov_index
        hits = 0
        start = 0  # first slot of the run of replies not yet sent
        self.batches += 1
        for i in range(n):
            off = i * SLOT
            size = lens[len_index[i]]
            entry = raw.get(bytes(view[off + 2 : off + size]))
            if entry is not None:
                hits += 1
                end = off + 2 + len(entry)
                view[off + 2 : end] = entry  # the query's ID stays in place
                iov_lens[iov_index[i]] = len(entry) + 2
                continue
            reply = responder.handle(bytes(view[off : off + size]), udp=True)
            if reply is None or len(reply) > SLOT:
                # No reply (QR=1, too short to answer): send what is ready, skip this one.
                self._flush(start, i)
                start = i + 1
                continue
            view[off : off + len(reply)] = reply
            iov_lens[iov_index[i]] = len(reply)
        responder.stats.cache_hits += hits
        self._flush(start, n)

    def _flush(self, start: int, stop: int) -> None:
        """Send slots [start, stop); what the kernel will not take now is dropped, counted."""
        retries = 2
        while start < stop:
            count = stop - start
            sent = self._send(self._fd, self._hdr_addr + start * self._msize, count,
                              MSG_DONTWAIT)
            if sent > 0:
                start += sent
                continue
            code = ctypes.get_errno() if sent < 0 else errno.EAGAIN
            # ECONNREFUSED: the ICMP error of an earlier peer, reported (and cleared) on this
            # call; the datagrams behind it are fine, so try again.
            if code in (errno.ECONNREFUSED, errno.EINTR) and retries:
                retries -= 1
                continue
            if code != errno.EAGAIN:
                log.warning("dns_udp_send_error", error=errno.errorcode.get(code, str(code)))
            # Send buffer full: drop the rest rather than queue (a client retries; a queue
            # would let a flood grow memory).
            self.responder.stats.outcomes["udp_send_dropped"] += count
            return

    def _receive_error(self, code: int) -> None:
        # EAGAIN: drained. ECONNREFUSED: an ICMP port-unreachable from a client that went
        # away, reported on the next call; the queue behind it is intact.
        if code in (errno.EAGAIN, errno.EINTR, errno.ECONNREFUSED):
            return
        log.warning("dns_udp_receive_error", error=errno.errorcode.get(code, str(code)))
