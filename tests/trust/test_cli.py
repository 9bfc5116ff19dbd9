"""``isthmus trust ...`` end to end: files, modes, manifests, inspect, check, errors."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from isthmus.cli import cli as isthmus_cli
from isthmus.errors import IsthmusError
from isthmus.trust import TrustBundle, create_root
from isthmus.trust.cli import group
from isthmus.trust.files import load_root, write_private

ISTHMUS = Path(sys.executable).parent / "isthmus"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def isthmus(*args: str | Path, real: bool = False) -> Ran:
    """``isthmus trust ARGS``. In-process by default (fast), with the error handling of
    ``isthmus.cli.main``; ``real=True`` runs the installed command, as an operator does."""
    if real:
        done = subprocess.run(
            [str(ISTHMUS), "trust", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)
    result = CliRunner().invoke(group, [str(a) for a in args])
    if isinstance(result.exception, IsthmusError):
        return Ran(1, result.stdout, result.stderr + f"isthmus: error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def is_private(path: Path) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode == 0o600 and not mode & (stat.S_IRWXG | stat.S_IRWXO)


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    out = tmp_path / "root"
    result = run("init", "--trust-domain", "example.org", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_init_writes_key_0600_and_refuses_to_overwrite(root_dir: Path) -> None:
    key = root_dir / "root.key"
    assert is_private(key)
    assert stat.S_IMODE(root_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((root_dir / "root.crt").stat().st_mode) == 0o644
    before = key.read_bytes()

    done = isthmus("init", "--trust-domain", "example.org", "--out", root_dir, real=True)
    assert done.returncode == 1
    assert done.stderr.startswith("isthmus: error: a root already exists at ")
    assert "--force" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert key.read_bytes() == before

    forced = run("init", "--trust-domain", "example.org", "--out", root_dir, "--force")
    assert forced.exit_code == 0
    assert key.read_bytes() != before
    assert is_private(key)


def test_key_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "k.pem", b"secret")
        run("init", "--trust-domain", "example.org", "--out", tmp_path / "r")
    finally:
        os.umask(old)
    assert is_private(tmp_path / "k.pem")
    assert is_private(tmp_path / "r" / "root.key")


def test_loading_a_world_readable_root_key_is_refused(root_dir: Path) -> None:
    (root_dir / "root.key").chmod(0o644)
    done = isthmus("cluster-ca", "--root", root_dir, "--cluster", "west")
    assert done.returncode == 1
    assert done.stderr.startswith("isthmus: error: ")
    assert "chmod 600" in done.stderr
    assert done.stdout == ""


def test_cluster_ca_prints_a_secret_ready_for_kubectl(root_dir: Path) -> None:
    done = isthmus("cluster-ca", "--root", root_dir, "--cluster", "west")
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))  # stdout is pure YAML: logs go to stderr
    assert len(docs) == 1
    secret = docs[0]
    assert secret["kind"] == "Secret" and secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["name"] == "isthmus-cluster-ca"
    assert secret["metadata"]["namespace"] == "isthmus-system"
    assert secret["metadata"]["labels"]["isthmus.io/cluster"] == "west"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert base64.b64decode(secret["data"]["ca.crt"]) == (root_dir / "root.crt").read_bytes()


def test_cluster_ca_out_file_is_private(root_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "west-ca.yaml"
    result = run("cluster-ca", "--root", root_dir, "--cluster", "west", "--out", out)
    assert result.exit_code == 0
    assert is_private(out)
    assert "0600" in result.output


def test_cluster_ca_context_applies_through_the_kube_layer(
    root_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import isthmus.kube.apply as kube_apply

    applied: list[tuple[str | None, str | None, list[dict[str, Any]]]] = []
    monkeypatch.setattr(
        kube_apply, "apply_manifests", lambda c, k, objs: applied.append((c, k, objs))
    )
    result = run(
        "cluster-ca",
        "--root",
        root_dir,
        "--cluster",
        "west",
        "--context",
        "kind-west",
        "--kubeconfig",
        "/tmp/kc",
    )
    assert result.exit_code == 0, result.output
    assert "PRIVATE" not in result.output and "tls.key" not in result.output
    [(context, kubeconfig, objects)] = applied
    assert (context, kubeconfig) == ("kind-west", "/tmp/kc")
    assert objects[0]["metadata"]["name"] == "isthmus-cluster-ca"


def test_cluster_ca_context_without_kube_layer(
    root_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "isthmus.kube.apply", None)  # the import fails
    done = isthmus("cluster-ca", "--root", root_dir, "--cluster", "w", "--context", "x")
    assert done.returncode == 1
    assert done.stderr.strip() == "isthmus: error: applying needs isthmus.kube (not available)"
    assert done.stdout == ""


def test_bundle_configmap_with_two_roots(root_dir: Path, tmp_path: Path) -> None:
    second = tmp_path / "root2"
    run("init", "--trust-domain", "example.org", "--out", second)
    done = isthmus("bundle", "--root", root_dir, "--root", second / "root.crt")
    assert done.returncode == 0, done.stderr
    [configmap] = yaml.safe_load_all(done.stdout)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == "isthmus-trust-bundle"
    assert configmap["metadata"]["namespace"] == "isthmus-system"
    bundle = TrustBundle.from_pem(configmap["data"]["roots.pem"])
    assert len(bundle.roots) == 2
    pem = run("bundle", "--root", root_dir, "--format", "pem")
    assert pem.output.count("BEGIN CERTIFICATE") == 1


def test_bundle_refuses_mixed_trust_domains(root_dir: Path, tmp_path: Path) -> None:
    run("init", "--trust-domain", "other.org", "--out", tmp_path / "o")
    done = isthmus("bundle", "--root", root_dir, "--root", tmp_path / "o")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("isthmus: error: roots of several trust domains")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["init", "--trust-domain", "Example.org"], "upper-case", id="bad-domain"),
        pytest.param(["cluster-ca", "--cluster", "West"], "DNS-1123", id="bad-cluster"),
    ],
)
def test_bad_input_is_one_clear_line(
    root_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    extra = ["--out", str(tmp_path / "x")] if args[0] == "init" else ["--root", str(root_dir)]
    done = isthmus(*args, *extra)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("isthmus: error: ") and message in lines[0]


@pytest.fixture
def issued(root_dir: Path, tmp_path: Path) -> Path:
    ca_file = tmp_path / "west-ca.yaml"
    run("cluster-ca", "--root", root_dir, "--cluster", "west", "--out", ca_file)
    out = tmp_path / "leaf"
    result = run(
        "issue",
        "--ca",
        ca_file,
        "--namespace",
        "shop",
        "--service-account",
        "users",
        "--out-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    assert is_private(out / "tls.key")
    return out


def test_inspect_shows_a_chain_in_human_terms(issued: Path, root_dir: Path) -> None:
    result = run("inspect", issued / "tls.crt", "--bundle", root_dir)
    text = result.output
    assert result.exit_code == 0
    for expected in (
        "kind:        leaf",
        "kind:        cluster CA (west)",
        "spiffe id:   spiffe://example.org/cluster/west/ns/shop/sa/users",
        "subject:     CN=users.shop,OU=west,O=isthmus",
        "issuer:      CN=west ",
        "left)",
        "fingerprint: sha256:",
        "chain: OK (spiffe://example.org/cluster/west/ns/shop/sa/users",
    ):
        assert expected in text, (expected, text)


def test_inspect_says_why_a_chain_is_refused(issued: Path, tmp_path: Path) -> None:
    run("init", "--trust-domain", "example.org", "--out", tmp_path / "stranger")
    result = run("inspect", issued / "tls.crt", "--bundle", tmp_path / "stranger" / "root.crt")
    assert "chain: refused (other_root)" in result.output
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    expired = run("inspect", issued / "tls.crt", "--bundle", tmp_path / "stranger", "--at", later)
    assert "EXPIRED" in expired.output


def test_inspect_reads_manifests(root_dir: Path, tmp_path: Path) -> None:
    configmap = tmp_path / "bundle.yaml"
    run("bundle", "--root", root_dir, "--out", configmap)
    result = run("inspect", configmap)
    assert "ConfigMap/isthmus-trust-bundle[roots.pem]" in result.output
    assert "root (trust domain example.org)" in result.output


def test_check_exit_codes(issued: Path, root_dir: Path) -> None:
    ok = isthmus("check", issued, root_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=350)).isoformat()
    warned = isthmus("check", issued, root_dir, "--at", soon)
    # at +350 d the leaf has expired: that is an error, naming it
    assert warned.returncode == 1
    assert "isthmus: error: 1 certificate(s) expired: " in warned.stderr
    assert "CN=users.shop,OU=west,O=isthmus" in warned.stderr
    assert "WARNING" in warned.stdout  # the cluster CA expires within 30 days


def test_check_warns_within_30_days(root_dir: Path, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.yaml"
    run("cluster-ca", "--root", root_dir, "--cluster", "west", "--out", ca_file)
    assert isthmus("check", ca_file).returncode == 0
    in_340_days = (dt.datetime.now(dt.UTC) + dt.timedelta(days=340)).isoformat()
    done = isthmus("check", ca_file, "--at", in_340_days)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "WARNING" in done.stdout and "Secret/isthmus-cluster-ca[tls.crt]" in done.stdout
    assert "expires in 2" in done.stdout
    assert isthmus("check", ca_file, "--at", in_340_days, "--warn-days", "10").returncode == 0


def test_check_window_shrinks_for_short_lived_certificates(root_dir: Path, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.yaml"
    run("cluster-ca", "--root", root_dir, "--cluster", "west", "--days", "21", "--out", ca_file)
    assert isthmus("check", ca_file).returncode == 0  # 21 days left, window is 7 days
    in_15_days = (dt.datetime.now(dt.UTC) + dt.timedelta(days=15)).isoformat()
    assert isthmus("check", ca_file, "--at", in_15_days).returncode == 3


def test_help_reads_well() -> None:
    top = run("--help")
    for command in ("init", "cluster-ca", "bundle", "inspect", "check", "issue"):
        assert command in top.output
        sub = run(command, "--help")
        assert sub.exit_code == 0
        assert "Usage:" in sub.output
    via_main = CliRunner().invoke(isthmus_cli, ["trust", "--help"])
    assert "Manage the shared trust root" in via_main.output


def test_load_root_round_trip(root_dir: Path) -> None:
    root = load_root(root_dir)
    assert root.cert.subject == root.cert.issuer
    assert create_root("example.org").fingerprint != root.fingerprint


def test_out_and_context_are_exclusive(root_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        group,
        [
            "cluster-ca",
            "--root",
            str(root_dir),
            "--cluster",
            "w",
            "--out",
            str(tmp_path / "x"),
            "--context",
            "c",
        ],
    )
    assert result.exit_code == 2
    assert "not both" in result.output
    assert not (tmp_path / "x").exists()
