"""The dispatcher: each event type has exactly one handler, and no type is left out."""

from __future__ import annotations

import typing

from mirror_helpers import Mesh

from isthmus.mirror import events as ev


async def test_every_event_type_has_one_handler(mesh: Mesh) -> None:
    handlers = mesh["east"].c._handlers
    assert set(handlers) == set(typing.get_args(ev.MirrorEvent))
    assert len(set(handlers.values())) == len(handlers)  # no handler serves two types
