"""The isthmus CustomResourceDefinitions, as shipped in manifests/crds/."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

CRD_NAMES = ("links.isthmus.io", "globalservices.isthmus.io")


def load_crds() -> list[dict[str, Any]]:
    """The CRD manifests, parsed, in a stable order."""
    folder = resources.files("isthmus.manifests").joinpath("crds")
    docs: list[dict[str, Any]] = []
    for name in CRD_NAMES:
        docs.append(yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text()))
    return docs


async def install_crds(api: Any) -> None:
    """Apply the CRDs to a cluster and wait until they can be used."""
    from isthmus.kube.apply import apply_all, wait_crds_established

    await apply_all(api, load_crds(), field_manager="isthmus-install")
    await wait_crds_established(api, CRD_NAMES)
