"""A local source of GlobalServices: a YAML or JSON file instead of a cluster.

For running the responder where there is no API server (benchmarks, the local rig's
simplest mode, tests of the process). Accepted shapes: one object, a list of objects, a
``kind: List``/``GlobalServiceList`` with ``items``, or several YAML documents. Every
object must validate as a ``GlobalService``; the first that does not is reported with its
position, and nothing is served from a half-valid file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import yaml

from isthmus.api.models import GlobalService
from isthmus.dns.errors import SourceError


def _objects(doc: Any) -> Iterator[Any]:
    if doc is None:
        return
    if isinstance(doc, list):
        for item in doc:
            yield from _objects(item)
    elif isinstance(doc, dict) and "items" in doc and "spec" not in doc:
        yield from _objects(doc["items"])
    else:
        yield doc


def _parse(text: str) -> list[Any]:
    # JSON is YAML too, but the pure-Python YAML parser takes about a second for 1 000
    # objects: JSON goes to the json module, YAML to libyaml's loader where it is built in.
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load_all(text, Loader=loader))


def load_services(path: str | Path) -> list[GlobalService]:
    """The GlobalServices in the file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        docs = _parse(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SourceError(f"cannot read GlobalServices from {path}: {exc}") from exc
    services: list[GlobalService] = []
    for index, obj in enumerate(o for doc in docs for o in _objects(doc)):
        try:
            services.append(GlobalService.model_validate(obj))
        except pydantic.ValidationError as exc:
            raise SourceError(f"{path}: object #{index} is not a valid GlobalService: "
                              f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    return services
