"""No private key ever reaches a log line, whatever the trust layer does."""

from __future__ import annotations

import base64
import json
import logging
import random
from pathlib import Path
from typing import Any

import structlog
import yaml
from click.testing import CliRunner, Result
from structlog.testing import capture_logs
from trust_helpers import Pki, tls_for

from isthmus.trust import (
    CertifiedKey,
    Issuer,
    LeafRenewer,
    TlsMaterial,
    create_cluster_ca,
    create_root,
)
from isthmus.trust.cli import group
from isthmus.trust.files import save_root, write_private


def secrets_of(keys: list[CertifiedKey]) -> list[str]:
    """Fragments that would betray a key: PEM body lines and the base64 of the PEM."""
    out: list[str] = []
    for material in keys:
        pem = material.key_pem()
        out += [line for line in pem.decode().splitlines() if "-----" not in line]
        out.append(base64.b64encode(pem).decode()[:40])
    return out


def flatten(events: list[dict[str, Any]]) -> str:
    return json.dumps(events, default=repr)


async def test_library_operations_log_no_key(tmp_path: Path) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    with capture_logs() as logs:
        root = create_root("example.org")
        ca = create_cluster_ca(root, "west")
        leaf = Issuer(ca).issue("shop", "users")
        save_root(tmp_path / "root", root)
        write_private(tmp_path / "leaf.key", leaf.key_pem())
        tls = tls_for(leaf, root)
        other = Issuer(ca).issue("shop", "users")
        tls.update(TlsMaterial.from_certified(other, tls.bundle))

        attempts = 0

        async def flaky(_leaf: CertifiedKey) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise OSError("API server unavailable")

        renewer = LeafRenewer(
            lambda: Issuer(ca).issue("shop", "users"), flaky, rng=random.Random(0), backoff=(0,)
        )
        await renewer.run(iterations=1)
    assert logs, "expected log lines"
    text = flatten(logs)
    assert "PRIVATE KEY" not in text
    for fragment in secrets_of([root, ca, leaf, other]):
        assert fragment not in text
    events = {e["event"] for e in logs}
    assert {"root created", "cluster CA created", "leaf issued", "tls material swapped"} <= events


def test_a_key_passed_to_a_logger_is_redacted() -> None:
    """The shared redaction processor, as configured for every component, catches it."""
    from isthmus.logging import redact_secrets

    leaf = Issuer(Pki().ca("west")).issue("shop", "users")
    event = {"event": "oops", "material": leaf.key_pem().decode(), "key": "x"}
    cleaned = redact_secrets(None, "info", dict(event))
    assert "PRIVATE KEY" not in json.dumps(cleaned)


def test_cli_logs_at_debug_carry_no_key(tmp_path: Path) -> None:
    def isthmus(*args: str | Path) -> Result:
        result = CliRunner().invoke(
            group, ["--log-level", "debug", *map(str, args)], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result

    logs = isthmus("init", "--trust-domain", "example.org", "--out", tmp_path / "r").stderr
    made = isthmus("cluster-ca", "--root", tmp_path / "r", "--cluster", "west")
    logs += made.stderr
    (tmp_path / "ca.yaml").write_text(made.stdout)
    logs += isthmus(
        "issue",
        "--ca",
        tmp_path / "ca.yaml",
        "--namespace",
        "a",
        "--service-account",
        "b",
        "--out-dir",
        tmp_path / "leaf",
    ).stderr
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert len(lines) >= 4  # JSON log lines on stderr
    secret = yaml.safe_load(made.stdout)  # stdout: the manifest alone
    keys = [
        (tmp_path / "r" / "root.key").read_text(),
        base64.b64decode(secret["data"]["tls.key"]).decode(),
        (tmp_path / "leaf" / "tls.key").read_text(),
    ]
    assert "PRIVATE KEY" not in logs
    for key in keys:
        for line in key.splitlines():
            if "-----" not in line:
                assert line not in logs
    assert secret["data"]["tls.key"][:40] not in logs
