"""Another git revision's isthmus, runnable beside the working tree's (benchmarks' A/B).

A small shared machine's speed can drift by tens of percent within an hour, so a
before/after claim is only sound when both run on the same world, interleaved.
``OtherRevision(rev)`` checks ``rev`` out into a temporary git worktree, generates its
protobuf code, and lays out its package as the installed one is (the component folders
mapped into ``isthmus.*``, from that revision's pyproject.toml); ``pythonpath`` then makes
``.venv/bin/isthmus`` run that code (``PYTHONPATH`` is searched before the editable
install's finder). Same interpreter and dependencies: only isthmus's own code differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class OtherRevision:
    def __init__(self, rev: str) -> None:
        self.rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                                  check=True, capture_output=True, text=True).stdout.strip()
        self.dir = Path(tempfile.mkdtemp(prefix=f"isthmus-rev-{self.rev}-"))
        self.src = self.dir / "src"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(self.src), self.rev], check=True)
        env = {**os.environ, "ISTHMUS_VENV_PYTHON": str(ROOT / ".venv/bin/python")}
        subprocess.run(["bash", str(self.src / "scripts/gen-protos.sh")], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        self.pythonpath = self.dir / "path"
        mapping = tomllib.loads((self.src / "pyproject.toml").read_text())["tool"][
            "setuptools"]["package-dir"]
        for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
            target = self.pythonpath.joinpath(*package.split("."))
            if "." in package:
                target.symlink_to(self.src / folder, target_is_directory=True)
                continue
            target.mkdir(parents=True)
            for entry in (self.src / folder).iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        # compiled once here, so its first timed start does not compile (as an image would)
        subprocess.run([sys.executable, "-c", "import isthmus.cli, isthmus.mirror.controller"],
                       check=True, env={**os.environ, "PYTHONPATH": str(self.pythonpath)})

    def close(self) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.src)],
                       check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
