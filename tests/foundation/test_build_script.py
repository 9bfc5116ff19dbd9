"""build-control-plane.sh names the missing piece when it cannot build (and never starts)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "multicluster-e2e" / "build-control-plane.sh"


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("GOPROXY", "GOFLAGS")}
    base.update(ISTHMUS_CACHE=str(tmp_path / "cache"), **env)
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=base,
                          timeout=60, check=False)


def test_without_go(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "curl", "cut", "mkdir", "dirname", "cat"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    proc = run(tmp_path, PATH=str(bindir))
    assert proc.returncode != 0
    assert "Go is not installed" in proc.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go")
def test_proxy_off(tmp_path: Path) -> None:
    proc = run(tmp_path, GOPROXY="off")
    assert proc.returncode != 0
    assert "needs the Go module proxy" in proc.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go")
def test_proxy_unreachable(tmp_path: Path) -> None:
    proc = run(tmp_path, GOPROXY="http://127.0.0.1:9")  # nothing listens on the discard port
    assert proc.returncode != 0
    assert "does not answer" in proc.stderr
    assert not (tmp_path / "cache" / "control-plane").exists() or not any(
        (tmp_path / "cache" / "control-plane").glob("kube-*/.complete")
    )


def test_cached_build_is_reused(tmp_path: Path) -> None:
    out = tmp_path / "cache" / "control-plane" / "kube-v1.35.4-etcd-v3.6.16"
    out.mkdir(parents=True)
    (out / ".complete").touch()
    proc = run(tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == str(out)
    assert "cached" in proc.stderr
