"""Another git revision's isthmus, runnable beside the working tree's (benchmarks' A/B).

A small shared machine's speed can drift by tens of percent within an hour, so a
before/after claim is only sound when both run on the same world, interleaved.
``OtherRevision(rev)`` checks ``rev`` out into a temporary git worktree and installs it (not
editable) into a folder of its own; ``pythonpath`` then makes ``.venv/bin/isthmus`` run that
code (``PYTHONPATH`` is searched before the editable install's finder). Same interpreter and
dependencies: only isthmus's own code differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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
        # Installed (not editable) into a folder of its own: the build maps the source roots
        # and generates the gRPC code, as for a wheel. Needs a revision with setup.py.
        self.pythonpath = self.dir / "path"
        subprocess.run([str(ROOT / ".venv/bin/pip"), "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--target", str(self.pythonpath), str(self.src)],
                       check=True)
        # compiled once here, so its first timed start does not compile (as an image would)
        subprocess.run([sys.executable, "-c", "import isthmus.cli, isthmus.mirror.controller"],
                       check=True, env={**os.environ, "PYTHONPATH": str(self.pythonpath)})

    def close(self) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.src)],
                       check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
