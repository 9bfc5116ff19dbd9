"""The CustomResourceDefinitions, as shipped in manifests/crds/.

isthmus owns its own CRDs (Link, GlobalService) and applies them on every install. The
Multi-Cluster Services CRDs (ServiceExport, ServiceImport) and ClusterProperty are shared
standards that another implementation or the cluster's vendor may already have installed,
in a newer schema: those are created only when absent and never changed.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from isthmus.logging import get_logger

log = get_logger("isthmus.api.crds")

CRD_NAMES = ("links.isthmus.io", "globalservices.isthmus.io")
MCS_CRD_NAMES = (
    "serviceexports.multicluster.x-k8s.io",
    "serviceimports.multicluster.x-k8s.io",
    "clusterproperties.about.k8s.io",
)


def _load(names: tuple[str, ...]) -> list[dict[str, Any]]:
    folder = resources.files("isthmus.manifests").joinpath("crds")
    return [yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text()) for name in names]


def load_crds() -> list[dict[str, Any]]:
    """isthmus's own CRD manifests, parsed, in a stable order."""
    return _load(CRD_NAMES)


def load_mcs_crds() -> list[dict[str, Any]]:
    """The shared MCS and About API CRD manifests, parsed, in a stable order."""
    return _load(MCS_CRD_NAMES)


def is_shared_crd(doc: dict[str, Any]) -> bool:
    """A shared CRD: created when absent, never overwritten."""
    return (doc.get("kind") == "CustomResourceDefinition"
            and doc.get("metadata", {}).get("name") in MCS_CRD_NAMES)


async def create_if_absent(api: Any, crd: dict[str, Any]) -> bool:
    """Create a shared CRD unless one of that name exists; True if this call created it."""
    from isthmus.kube import errors
    from isthmus.kube.resources import CRDS

    name = crd["metadata"]["name"]
    try:
        await api.get(CRDS, name)
    except errors.NotFoundError:
        pass
    else:
        log.info("crd_present_left_alone", crd=name)
        return False
    try:
        await api.create(CRDS, crd)
    except errors.ConflictError:  # created meanwhile by someone else: theirs stands
        log.info("crd_present_left_alone", crd=name)
        return False
    log.info("crd_created", crd=name)
    return True


async def install_crds(api: Any) -> None:
    """Apply isthmus's CRDs, create the shared ones that are absent, and wait until all
    can be used."""
    from isthmus.kube.apply import apply_all, wait_crds_established

    await apply_all(api, load_crds(), field_manager="isthmus-install")
    for crd in load_mcs_crds():
        await create_if_absent(api, crd)
    await wait_crds_established(api, (*CRD_NAMES, *MCS_CRD_NAMES))
