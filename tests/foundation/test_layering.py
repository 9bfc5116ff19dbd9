"""The layers stay apart: the core imports no component, the components import neither the
operator commands nor the local rig, and nothing shipped imports the rig."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# source root -> packages its modules must never import
FORBIDDEN = {
    "core": ("isthmus.mirror", "isthmus.gateway", "isthmus.dns", "isthmus.trust", "isthmus.cli",
             "isthmus.devcluster"),
    "mirror": ("isthmus.cli", "isthmus.devcluster"),
    "gateway": ("isthmus.cli", "isthmus.devcluster"),
    "dns": ("isthmus.cli", "isthmus.devcluster"),
    "trust": ("isthmus.cli", "isthmus.devcluster"),
    "cli": ("isthmus.devcluster",),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("root", sorted(FORBIDDEN))
def test_no_import_crosses_a_layer_upwards(root: str) -> None:
    files = sorted((ROOT / root).rglob("*.py"))
    assert files, f"no sources under {root}/"
    crossings = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files if "_pb2" not in path.name
        for name in sorted(_imports(path))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[root])
    ]
    assert crossings == []
