"""A wheel built from a pristine copy of the tree installs and runs every command.

The copy holds only the files git tracks (no generated gRPC code, no .venv, no build/), so
this proves the build itself generates what the package needs and ships the manifests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isthmus.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the wheel's contents installed (dependencies come from this venv)."""
    work = tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True,
                             capture_output=True).stdout.decode().split("\0")
    src = work / "src"
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    assert not list(src.rglob("*_pb2*.py")), "the pristine copy must not hold generated code"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # --no-build-isolation: the build requirements (setuptools, grpcio-tools) are this
    # venv's, pinned by constraints.txt, so the test needs no index.
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"),
                    str(src)], check=True)
    (wheel,) = (work / "dist").glob("isthmus-*.whl")
    target = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    return target


def _python(target: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the wheel first on the path and this venv's packages after it.

    -S skips site, so no .pth file runs: neither the editable finder of the working tree nor
    the rig's path entry; the dependencies' folder is added as a plain path entry."""
    deps = subprocess.run([sys.executable, "-c", "import sysconfig;"
                           "print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    prelude = f"import sys; sys.path[1:1] = [{str(target)!r}, {deps!r}]\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-S", "-c", prelude + code, *args],
                          capture_output=True, text=True, env=env, check=False)


def _run(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _python(target, "from isthmus.cli import main; sys.argv[0] = 'isthmus'; main()",
                   *args)


def test_the_wheel_carries_generated_grpc_code_and_manifests(installed: Path) -> None:
    mirror = installed / "isthmus" / "mirror"
    assert (mirror / "catalog_pb2.py").is_file() and (mirror / "catalog_pb2_grpc.py").is_file()
    manifests = installed / "isthmus" / "manifests"
    for part in ("crds", "mirror", "gateway", "dns"):
        assert list((manifests / part).glob("*.yaml")), part
    assert not (installed / "isthmus" / "devcluster").exists(), "the rig is not shipped"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_command_runs_from_the_wheel(installed: Path, name: str) -> None:
    proc = _run(installed, name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: isthmus" in proc.stdout


def test_the_wheel_imports_its_own_code_only(installed: Path) -> None:
    """The components load from the wheel (not from the working tree), gRPC code included."""
    proc = _run(installed, "crds")
    assert proc.returncode == 0, proc.stderr
    assert "kind: CustomResourceDefinition" in proc.stdout
    assert "name: serviceimports.multicluster.x-k8s.io" in proc.stdout  # shipped too
    probe = _python(installed, (
        "from isthmus.grpc_tls import pin_tls13; pin_tls13()\n"
        "import isthmus.mirror.catalog_pb2_grpc as g, isthmus.mirror.controller as c\n"
        "print(g.__file__); print(c.__file__)"))
    assert probe.returncode == 0, probe.stderr
    assert len(probe.stdout.splitlines()) == 2
    for line in probe.stdout.splitlines():
        assert line.startswith(str(installed)), line
