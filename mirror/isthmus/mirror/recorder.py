"""Kubernetes Events (events.k8s.io/v1) for transitions: one call, never fatal."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from typing import Any

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import EVENTS
from isthmus.logging import get_logger

log = get_logger("isthmus.mirror.recorder")

CONTROLLER = "isthmus.io/mirror"


class EventRecorder:
    def __init__(self, api: KubeApi, instance: str | None = None) -> None:
        self.api = api
        self.instance = instance or os.environ.get("HOSTNAME", "isthmus-mirror")
        self.sent = 0

    async def emit(
        self,
        regarding: Mapping[str, Any],
        *,
        reason: str,
        note: str,
        action: str,
        warning: bool = False,
    ) -> None:
        meta = regarding.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        name = f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:12]}"
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name[-253:].lstrip(".-") or name, "namespace": namespace},
            "eventTime": now,
            "reportingController": CONTROLLER,
            "reportingInstance": self.instance[:128],
            "action": action,
            "reason": reason,
            "type": "Warning" if warning else "Normal",
            "note": note[:1024],
            "regarding": {
                "apiVersion": regarding.get("apiVersion"),
                "kind": regarding.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
        }
        try:
            await self.api.create(EVENTS, event, namespace)
            self.sent += 1
        except kube_errors.KubeError as exc:
            log.warning("cannot write Event", reason=reason, error=str(exc))
