"""A gateway worker that fails says why, and takes the others down (the pod restarts whole)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_a_failing_worker_logs_its_error_and_stops_the_rest(tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text("{}")
    missing = tmp_path / "absent"
    proc = subprocess.run(
        [sys.executable, "-m", "isthmus.cli", "--log-level", "info", "gateway", "--workers", "2",
         "--cluster", "west", "--routes-file", str(routes), "--tls-cert", str(missing / "c.pem"),
         "--tls-key", str(missing / "k.pem"), "--trust-bundle", str(missing / "b.pem"),
         "--inbound-address", "127.0.0.1:0", "--admin-address", ""],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode != 0
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "worker failed"]
    assert failed, proc.stderr
    assert "cannot read TLS material" in failed[0]["error"]
    assert any(e["event"] == "worker exited; stopping the others" for e in events)
