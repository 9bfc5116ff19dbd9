"""Run ``mypy --strict`` over the isthmus package as it installs.

The component folders (mirror/, gateway/, dns/, trust/) are mapped into ``isthmus.*`` by
pyproject.toml; mypy does not follow setuptools' editable import hook, so we lay the
package out as a tree of symlinks under build/typecheck and check that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    tree = ROOT / "build" / "typecheck"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        target = tree.joinpath(*package.split("."))
        if "." in package:
            target.symlink_to(ROOT / folder, target_is_directory=True)
            continue
        # The root package is a real folder of links, so subpackages can be added beside.
        target.mkdir()
        for entry in (ROOT / folder).iterdir():
            if entry.name != "__pycache__":
                (target / entry.name).symlink_to(entry)
    config = str(ROOT / "pyproject.toml")
    cmd = [sys.executable, "-m", "mypy", "--config-file", config, "-p", "isthmus"]
    return subprocess.call(cmd, cwd=tree)


if __name__ == "__main__":
    sys.exit(main())
