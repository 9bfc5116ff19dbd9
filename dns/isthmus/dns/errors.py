"""Errors of the DNS responder, one tree under ``IsthmusError``.

    IsthmusError
     └── DnsError                      anything the responder raises on purpose
          ├── MessageError             a query answered with an error rcode
          │    ├── FormatError         FORMERR: garbage, bad counts, malformed OPT
          │    └── OpcodeNotImplemented NOTIMP: an opcode other than QUERY
          ├── DroppedMessage           no reply at all: shorter than a header, or QR=1
          ├── SourceError              a local GlobalService file cannot be read or validated
          └── CorefileError            a Corefile that cannot be edited safely

``MessageError`` and ``DroppedMessage`` never leave the responder: the wire layer turns
them into a reply (or silence) and a counter. The others reach the CLI as a clean message.
"""

from __future__ import annotations

from isthmus.errors import IsthmusError

# RFC 1035 response codes of the errors below.
RCODE_FORMERR = 1
RCODE_NOTIMP = 4


class DnsError(IsthmusError):
    """Base of every error of ``isthmus.dns``."""


class MessageError(DnsError):
    """A query that gets an error reply; ``rcode`` is the (possibly extended) code."""

    rcode: int = RCODE_FORMERR
    reason: str = "formerr"

    def __init__(self, message: str, *, msg_id: int = 0, flags: int = 0) -> None:
        super().__init__(message)
        self.msg_id = msg_id
        self.flags = flags


class FormatError(MessageError):
    rcode = RCODE_FORMERR
    reason = "formerr"


class OpcodeNotImplemented(MessageError):
    rcode = RCODE_NOTIMP
    reason = "notimp"


class DroppedMessage(DnsError):
    """A packet that gets no reply; ``reason`` names why (for the counter and the log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceError(DnsError):
    """The local GlobalService file is missing, unreadable or not valid."""


class CorefileError(DnsError):
    """The Corefile text has unbalanced braces or another shape we refuse to edit."""
