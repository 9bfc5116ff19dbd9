"""The kind rig for the scenario suite: why it cannot run here (yet), checked before any test.

The kind clusters are brought up by ``multicluster-e2e/kind/up`` (pods from the isthmus image,
CoreDNS with the ``global`` stub, the echo workloads), which writes the kubeconfig of its
clusters into its state folder. A ``ClusterSet`` for them would drive kubectl against those
contexts and run the demo client in a pod. Until it exists, every scenario on ``--rig kind``
is skipped with the reason, never passed.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UP_SCRIPT = REPO / "multicluster-e2e" / "kind" / "up"


def _state() -> Path:
    return Path(os.environ.get("ISTHMUS_KIND_STATE") or REPO / "rig-state" / "kind")


def unavailable() -> str:
    """Why the kind rig cannot run the scenarios here."""
    if not UP_SCRIPT.exists():
        return f"kind rig not available: {UP_SCRIPT.relative_to(REPO)} is not in this checkout"
    kubeconfig = _state() / "kubeconfig"
    if not kubeconfig.exists():
        return (f"kind rig not available: no clusters are up ({kubeconfig} is missing; run "
                f"{UP_SCRIPT.relative_to(REPO)} --clusters 3)")
    return ("kind rig not available: the scenario suite has no kind driver yet (kubectl "
            "against the kind contexts); the local rig runs every scenario")
