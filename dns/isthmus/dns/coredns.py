"""The CoreDNS stub domain: forward ``global`` to the responder.

``with_global_forward(corefile, addresses)`` returns the Corefile with exactly one server
block for the zone, ``global:53 { forward . <addresses> }``, added at the end or replacing
the one that is there (any spelling: ``global``, ``global.``, ``global:53``,
``global.:53``). Pure text in, text out, idempotent: running it on its own output changes
nothing. Every other block is kept byte for byte. The ``isthmus install`` work applies the
result to the ``coredns`` ConfigMap; manifests/dns/coredns-stub.yaml shows the block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from isthmus.dns.errors import CorefileError


@dataclass(frozen=True, slots=True)
class ServerBlock:
    keys: tuple[str, ...]  # e.g. ("global:53",) or (".:53",)
    start: int  # offset of the first key in the text
    end: int  # offset just past the closing brace
    body: str  # text between the braces


def parse_server_blocks(text: str) -> list[ServerBlock]:
    """Top-level server blocks of a Corefile (comments and quoted strings understood)."""
    blocks: list[ServerBlock] = []
    depth = 0
    i = 0
    keys_start = -1
    body_start = 0
    keys_text = ""
    while i < len(text):
        ch = text[i]
        if ch == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if ch in "\"`":
            close = text.find(ch, i + 1)
            if close < 0:
                raise CorefileError("unterminated quote")
            i = close + 1
            continue
        if ch == "{":
            if depth == 0:
                if keys_start < 0:
                    raise CorefileError(f"block without a server key at offset {i}")
                keys_text = text[keys_start:i]
                body_start = i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise CorefileError(f"unbalanced '}}' at offset {i}")
            if depth == 0:
                keys = tuple(k for k in keys_text.replace(",", " ").split() if k)
                blocks.append(ServerBlock(keys, keys_start, i + 1, text[body_start:i]))
                keys_start = -1
        elif depth == 0 and not ch.isspace() and keys_start < 0:
            keys_start = i
        i += 1
    if depth != 0:
        raise CorefileError("unbalanced '{'")
    if keys_start >= 0:
        raise CorefileError("server key without a block at the end")
    return blocks


def _is_zone(key: str, zone: str) -> bool:
    name, _, port = key.partition(":")
    for scheme in ("dns://",):
        name = name.removeprefix(scheme)
    return name.rstrip(".").lower() == zone and port in ("", "53")


def render_block(addresses: Sequence[str], zone: str = "global") -> str:
    for address in addresses:
        ipaddress.ip_address(address)  # a typo here would break cluster DNS
    if not addresses:
        raise CorefileError("forward needs at least one address")
    return (
        f"{zone}:53 {{\n"
        "    errors\n"
        f"    forward . {' '.join(addresses)}\n"
        "}\n"
    )


def with_global_forward(corefile: str, addresses: Sequence[str], zone: str = "global") -> str:
    """``corefile`` with the block for ``zone`` forwarding to ``addresses`` (see above)."""
    zone = zone.rstrip(".").lower()
    try:
        block = render_block(addresses, zone)
    except ValueError as exc:
        raise CorefileError(f"not an IP address: {exc}") from exc
    ours = [b for b in parse_server_blocks(corefile) if any(_is_zone(k, zone) for k in b.keys)]
    if any(len(b.keys) > 1 for b in ours):
        raise CorefileError(f"a block serves {zone} together with other zones; edit it by hand")
    text = corefile
    for found in reversed(ours):  # drop every copy, then add one at the end
        tail = text[found.end :]
        text = text[: found.start] + tail.removeprefix("\n")
    text = text.rstrip("\n")
    return (text + "\n" if text else "") + block


def forward_targets(corefile: str, zone: str = "global") -> tuple[str, ...] | None:
    """The addresses the Corefile's block for ``zone`` forwards to (``()`` if that block has
    no ``forward .`` line), or None when no block serves the zone."""
    zone = zone.rstrip(".").lower()
    for block in parse_server_blocks(corefile):
        if not any(_is_zone(k, zone) for k in block.keys):
            continue
        for line in block.body.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 3 and words[0] == "forward" and words[1] == ".":
                return tuple(w for w in words[2:] if w != "{")
        return ()
    return None
