"""The kind node-image archive rewrite: `repositories` first, Docker Hub names in full."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "multicluster-e2e" / "kind" / "archive_repositories_first.py"
spec = importlib.util.spec_from_file_location("archive_repositories_first", SCRIPT)
assert spec is not None and spec.loader is not None
arf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arf)


@pytest.mark.parametrize(("repo", "full"), [
    pytest.param("kindest/kindnetd", "docker.io/kindest/kindnetd", id="hub-org"),
    pytest.param("busybox", "docker.io/library/busybox", id="hub-library"),
    pytest.param("registry.k8s.io/etcd", "registry.k8s.io/etcd", id="registry"),
    pytest.param("registry.k8s.io/coredns/coredns", "registry.k8s.io/coredns/coredns", id="nested"),
    pytest.param("localhost/x", "localhost/x", id="localhost"),
    pytest.param("reg:5000/x", "reg:5000/x", id="port"),
    pytest.param("docker.io/kindest/x", "docker.io/kindest/x", id="already-full"),
])
def test_full_name(repo: str, full: str) -> None:
    assert arf.full_name(repo) == full


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_rewrite_puts_repositories_first(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.tar", tmp_path / "out.tar"
    with tarfile.open(src, "w") as tar:
        _add(tar, "abc/layer.tar", b"layer")
        _add(tar, "manifest.json", json.dumps([
            {"Config": "c1.json", "RepoTags": ["kindest/kindnetd:v1"], "Layers": ["abc/layer.tar"]},
            {"Config": "c2.json", "RepoTags": ["registry.k8s.io/etcd:3.6.6-0"], "Layers": []},
        ]).encode())
        _add(tar, "repositories", json.dumps({
            "kindest/kindnetd": {"v1": "abc"}, "registry.k8s.io/etcd": {"3.6.6-0": "def"},
        }).encode())
    arf.main(str(src), str(dst))
    with tarfile.open(dst) as tar:
        names = tar.getnames()
        assert names[:2] == ["repositories", "manifest.json"]
        assert "abc/layer.tar" in names
        repos = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert tar.extractfile("abc/layer.tar").read() == b"layer"  # type: ignore[union-attr]
    assert repos == {"docker.io/kindest/kindnetd": {"v1": "abc"},
                     "registry.k8s.io/etcd": {"3.6.6-0": "def"}}
    assert [m["RepoTags"] for m in manifest] == [["docker.io/kindest/kindnetd:v1"],
                                                 ["registry.k8s.io/etcd:3.6.6-0"]]
