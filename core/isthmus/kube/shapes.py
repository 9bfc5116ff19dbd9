"""Typed decoding of API answers straight into the fields a consumer keeps.

A LIST page of 500 Services is about 2.5 MB of JSON, most of it ``managedFields``,
``status`` and fields nobody here reads; ``json.loads`` turns every byte of it into Python
objects that are thrown away a moment later (the mirror's full resync of 10 000 services
spent 40 % of its time there, and the short-lived garbage fragments the heap the slim
copies live in). A *shape* is a ``TypedDict`` naming the fields to keep; msgspec parses
the JSON in C and builds Python objects only for those, skipping the rest unbuilt.
(pydantic-core did this job first: msgspec takes about half its time on the same LIST
pages, docs/decisions/msgspec-decoding.md.)

The result is a plain ``dict`` like ``json.loads`` gives, so consumers do not change.
A field of the wrong type is a ``msgspec.ValidationError`` (a ``ValueError``), which the
client reports as a malformed answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

import msgspec
from typing_extensions import TypedDict

T = TypeVar("T")
Decode = Callable[[bytes], dict[str, Any]]


class MetadataShape(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    deletionTimestamp: str | None
    labels: dict[str, str] | None
    annotations: dict[str, str] | None


class ObjectShape(TypedDict, total=False):
    """What every shape keeps. ``code``/``reason``/``message`` are a ``Status`` object's
    (a watch ERROR event carries one where the object would be)."""

    apiVersion: str
    kind: str
    metadata: MetadataShape
    code: int
    reason: str
    message: str


class CreatedMetadataShape(MetadataShape, total=False):
    creationTimestamp: str | None


class CreatedObjectShape(TypedDict, total=False):
    """``ObjectShape`` that also keeps ``metadata.creationTimestamp`` (an export's age)."""

    apiVersion: str
    kind: str
    metadata: CreatedMetadataShape
    code: int
    reason: str
    message: str


# ``continue`` is a Python keyword, hence the functional form
ListMeta = TypedDict("ListMeta", {"resourceVersion": str, "continue": str}, total=False)


class ListPage(TypedDict, Generic[T], total=False):
    metadata: ListMeta
    items: list[T] | None


class WatchEvent(TypedDict, Generic[T]):
    type: str
    object: T


@dataclass(frozen=True)
class Decoders:
    """The three decoders of one shape: a LIST page, a watch event line, one object."""

    page: Decode
    event: Decode
    object: Decode


def _decoder(tp: Any) -> Decode:
    decode: Decode = msgspec.json.Decoder(tp).decode
    return decode


def _event_decoder(shape: type) -> Decode:
    shaped = _decoder(WatchEvent[shape])  # type: ignore[valid-type]

    def decode(line: bytes) -> dict[str, Any]:
        try:
            return shaped(line)
        except msgspec.ValidationError:
            # An ERROR event carries a Status where the object would be, and a shape with
            # a ``status`` of its own (a GlobalService's object) cannot hold the Status's
            # string: read that event whole, or a 410 would look malformed and never
            # lead to a re-list.
            event = json.loads(line)
            if isinstance(event, dict) and event.get("type") == "ERROR":
                return event
            raise

    return decode


@cache
def decoders(shape: type) -> Decoders:
    """Decoders for ``shape`` (built once per shape)."""
    return Decoders(page=_decoder(ListPage[shape]),  # type: ignore[valid-type]
                    event=_event_decoder(shape),
                    object=_decoder(shape))
