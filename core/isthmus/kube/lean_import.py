"""Import the few parts of ``kubernetes_asyncio`` isthmus uses, without its generated code.

``import kubernetes_asyncio`` (or any of its submodules) first runs the package
``__init__`` files, which import every generated API class and all model classes: about
40 MB resident in every isthmus process, a fifth of the mirror's 200 MB budget. isthmus
uses only ``ApiClient`` (the HTTP session and auth), ``Configuration`` and the kubeconfig /
in-cluster loaders, and never deserializes into model classes (every request is made with
``_preload_content=False`` and parsed as JSON by ``KubeApi``).

So the two packages whose ``__init__`` does that, ``kubernetes_asyncio`` and
``kubernetes_asyncio.client`` (and ``client.models``, which ``api_client`` imports for
deserialization), are registered as plain package modules over their real directories;
their submodules then import normally. If ``kubernetes_asyncio`` was already imported the
normal way (by someone else in the process), that import is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def _bare_package(name: str, path: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    module.__package__ = name
    sys.modules[name] = module
    return module


def load() -> tuple[types.ModuleType, types.ModuleType]:
    """``(client, config)``: ``client`` has ``ApiClient`` and ``Configuration``; ``config``
    is ``kubernetes_asyncio.config`` itself."""
    if "kubernetes_asyncio.client" not in sys.modules:
        spec = importlib.util.find_spec("kubernetes_asyncio")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("kubernetes_asyncio is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
        _bare_package("kubernetes_asyncio", root)
        client = _bare_package("kubernetes_asyncio.client", root / "client")
        _bare_package("kubernetes_asyncio.client.models", root / "client" / "models")
        api_client = importlib.import_module("kubernetes_asyncio.client.api_client")
        configuration = importlib.import_module("kubernetes_asyncio.client.configuration")
        client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
        client.Configuration = configuration.Configuration  # type: ignore[attr-defined]
    client = sys.modules["kubernetes_asyncio.client"]
    config = importlib.import_module("kubernetes_asyncio.config")
    return client, config
