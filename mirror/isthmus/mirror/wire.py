"""The generated protobuf module, loaded by name.

``catalog_pb2`` is build output (setup.py). It is imported dynamically so the
type checker does not descend into generated stubs (they need ``types-protobuf``, which is
not a project dependency); the catalog server and client convert its messages to and from
typed values at the boundary.
"""

from __future__ import annotations

import importlib
from typing import Any

pb: Any = importlib.import_module("isthmus.mirror.catalog_pb2")
