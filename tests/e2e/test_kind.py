"""On kind: cross-cluster calls from a pod by .global name (HTTP, gRPC, TCP), through the
whole production path (multicluster-e2e/kind/smoke.sh on clusters made by kind/up).

Runs against a rig that is up; with ISTHMUS_KIND_RUN_UP=1 it brings one up first (cold: about
half an hour on 2 cores, see docs/kind.md). Otherwise it is skipped, saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kind]

KIND_DIR = Path(__file__).resolve().parents[2] / "multicluster-e2e" / "kind"


def _why_not() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    if os.geteuid() != 0 and not os.environ.get("DOCKER_HOST"):
        return "not root, and no DOCKER_HOST: no engine to run kind on"
    if shutil.which("dockerd") is None and subprocess.run(
            ["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no container engine answers, and dockerd is not installed to start one"
    return None


def _clusters() -> list[str]:
    out = subprocess.run(["bash", "-c", f"source {KIND_DIR}/env.sh; engine_detect >/dev/null 2>&1 && clusters"],
                         capture_output=True, text=True, check=False)
    return out.stdout.split()


def test_cross_cluster_calls_from_a_pod() -> None:
    reason = _why_not()
    if reason:
        print(f"SKIP kind: {reason}")
        pytest.skip(reason)
    if len(_clusters()) < 2:
        if os.environ.get("ISTHMUS_KIND_RUN_UP") != "1":
            reason = "the kind rig is not up (run multicluster-e2e/kind/up, or set ISTHMUS_KIND_RUN_UP=1)"
            print(f"SKIP kind: {reason}")
            pytest.skip(reason)
        up = subprocess.run([str(KIND_DIR / "up")], check=False, timeout=3600)
        assert up.returncode == 0, "kind/up failed (see its output above)"
    smoke = subprocess.run([str(KIND_DIR / "smoke.sh")], capture_output=True, text=True,
                           check=False, timeout=1200)
    print(smoke.stdout[-4000:], smoke.stderr[-4000:])
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert " 0 failed" in smoke.stdout
