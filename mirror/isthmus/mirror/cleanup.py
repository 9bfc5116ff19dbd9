"""Remove what one link imported, even when the controller is not running (``unjoin``).

``remove_link_objects(api, link)`` takes the Link's name, UID, or peer cluster name. An
object the mirror wrote for that link alone is deleted (UID precondition); an object shared
with other links (a service several clusters export) only loses that link's label, hosts
and endpoint, and the running controller rewrites the rest. Objects without the mirror's
labels are never touched. Running it twice is harmless (the second run finds nothing).
"""

from __future__ import annotations

from typing import Any

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.resources import (
    ENDPOINTSLICES,
    GLOBALSERVICES,
    LINKS,
    SERVICEIMPORTS,
    SERVICES,
)
from isthmus.labels import LINK_UID_LABEL, MIRROR_LABEL, PEER_CLUSTER_LABEL, PINNED_CLUSTER_LABEL
from isthmus.logging import get_logger
from isthmus.mirror.names import is_ours, link_label, link_owners

log = get_logger("isthmus.mirror.cleanup")


async def _resolve(api: KubeApi, link: str) -> tuple[set[str], set[str]]:
    """(cluster names, link UIDs) that ``link`` may stand for."""
    clusters, uids = {link}, {link}
    try:
        obj = await api.get(LINKS, link)
    except kube_errors.NotFoundError:
        return clusters, uids
    clusters.add(str(obj["spec"]["cluster"]))
    uids.add(str(obj["metadata"]["uid"]))
    return clusters, uids


def _strip(obj: JsonObj, cluster: str) -> JsonObj:
    labels = obj["metadata"].setdefault("labels", {})
    labels.pop(link_label(cluster), None)
    owners = link_owners(labels)
    labels.pop(PEER_CLUSTER_LABEL, None)
    labels.pop(LINK_UID_LABEL, None)
    if len(owners) == 1:
        (other, uid), = owners.items()
        labels[PEER_CLUSTER_LABEL] = other
        labels[LINK_UID_LABEL] = uid
    if obj.get("kind") == "GlobalService":
        spec = obj.get("spec") or {}
        spec["endpoints"] = [e for e in spec.get("endpoints") or [] if e.get("cluster") != cluster]
        spec["hosts"] = [h for h in spec.get("hosts") or [] if not h.endswith(f".{cluster}.global")]
    return obj


async def remove_link_objects(api: KubeApi, link_name_or_uid: str) -> int:
    """Delete (or detach from) every object the mirror wrote for one link; the count."""
    clusters, uids = await _resolve(api, link_name_or_uid)
    count = 0
    for res in (GLOBALSERVICES, SERVICES, ENDPOINTSLICES, SERVICEIMPORTS):
        try:
            answer = await api.list(res, label_selector=f"{MIRROR_LABEL}=true")
        except kube_errors.NotFoundError:
            continue  # CRD not installed: nothing of ours there
        for item in answer.get("items") or []:
            if not is_ours(item):
                continue
            labels: dict[str, Any] = item["metadata"].get("labels") or {}
            owners = link_owners(labels)
            mine = [c for c, uid in owners.items() if c in clusters or uid in uids]
            if not mine:
                continue
            cluster = mine[0]
            meta = item["metadata"]
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
            only_mine = set(owners) == {cluster} or labels.get(PINNED_CLUSTER_LABEL) == cluster
            try:
                if only_mine:
                    await api.delete(res, meta["name"], meta["namespace"], uid=meta["uid"])
                else:
                    await api.replace(res, _strip(item, cluster), meta["namespace"])
                count += 1
            except (kube_errors.NotFoundError, kube_errors.ConflictError) as exc:
                log.info("object changed meanwhile, skipped", name=meta["name"], error=str(exc))
    log.info("link objects removed", link=link_name_or_uid, count=count)
    return count
