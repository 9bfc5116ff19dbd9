"""The kind rig for the scenario suite: why it cannot run here (yet), checked before any test.

The kind clusters are brought up by ``multicluster-e2e/kind/up`` (pods from the isthmus image,
CoreDNS with the ``global`` stub). The ``ClusterSet`` for them is meant to drive kubectl against
the kind contexts and run the demo client in pods; until it exists, every scenario on
``--rig kind`` is skipped with the reason, never passed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UP_SCRIPT = REPO / "multicluster-e2e" / "kind" / "up"


def unavailable() -> str:
    """Why the kind rig cannot run the scenarios here."""
    missing = [tool for tool in ("kind", "kubectl", "docker") if shutil.which(tool) is None]
    if missing:
        return f"kind rig not available: {', '.join(missing)} not on PATH"
    if not UP_SCRIPT.exists():
        return f"kind rig not available: {UP_SCRIPT.relative_to(REPO)} is not in this checkout"
    listing = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True,
                             timeout=60, check=False)
    if listing.returncode != 0 or not listing.stdout.strip():
        return ("kind rig not available: no kind clusters are running "
                f"(run {UP_SCRIPT.relative_to(REPO)} first)")
    return ("kind rig not available: the scenario suite has no kind driver yet "
            "(kubectl + kind contexts); the local rig runs every scenario")
