"""`isthmus dns`: help, settings, the local GlobalService file, and the real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from dns_fixtures import SERVICES, global_service
from dnslib import DNSRecord

from isthmus.cli import cli
from isthmus.dns.errors import SourceError
from isthmus.dns.settings import DnsSettings
from isthmus.dns.static_file import load_services
from isthmus.errors import ConfigError
from isthmus.settings import load

ISTHMUS = str(Path(sys.executable).with_name("isthmus"))


def test_help_reads_well() -> None:
    result = CliRunner().invoke(cli, ["dns", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--listen-address", "--port", "--zones", "--ttl", "--stale-ttl",
                   "--tcp-idle-timeout", "--static-file", "--kubeconfig", "--context",
                   "ISTHMUS_DNS_TTL"):
        assert option in result.output
    assert "<svc>.<ns>.global" in result.output


def test_settings_flags_env_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISTHMUS_DNS_TTL", "9")
    settings = load(DnsSettings, {"zones": "Global.,mesh.example", "stale_ttl": "2"})
    assert (settings.ttl, settings.stale_ttl) == (9, 2)
    assert settings.snapshot_config().zones == ("global.", "mesh.example.")
    with pytest.raises(ConfigError, match="--zones"):
        load(DnsSettings, {"zones": "a..b"})
    with pytest.raises(ConfigError, match="--edns-udp-size"):
        load(DnsSettings, {"edns_udp_size": "100"})
    assert settings.snapshot_config().clusterset_zone == "clusterset.local."
    off = load(DnsSettings, {"clusterset_zone": ""})
    assert off.snapshot_config().clusterset_zone == ""
    with pytest.raises(ConfigError, match="--clusterset-zone"):
        load(DnsSettings, {"clusterset_zone": "clusterset..local"})


def objects() -> list[dict[str, Any]]:
    return [s.to_wire() for s in SERVICES[:2]]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(yaml.safe_dump_all, id="yaml-documents"),
        pytest.param(yaml.safe_dump, id="yaml-list"),
        pytest.param(lambda o: json.dumps({"kind": "List", "items": o}), id="json-kind-list"),
        pytest.param(lambda o: json.dumps({"kind": "GlobalServiceList", "items": o}),
                     id="json-globalservicelist"),
    ],
)
def test_static_file_shapes(tmp_path: Path, text: Any) -> None:
    path = tmp_path / "services"
    path.write_text(text(objects()))
    assert [s.metadata.name for s in load_services(path)] == ["users", "orders"]


def test_static_file_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        load_services(tmp_path / "missing.yaml")
    bad = objects()
    bad[1]["spec"]["ports"] = []
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump_all(bad))
    with pytest.raises(SourceError, match=r"object #1 .*ports"):
        load_services(tmp_path / "bad.yaml")
    (tmp_path / "junk.yaml").write_text("a: [b")
    with pytest.raises(SourceError):
        load_services(tmp_path / "junk.yaml")


def start(path: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [ISTHMUS, "dns", "--listen-address", "127.0.0.1", "--port", "0",
         "--static-file", str(path), *extra],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "ISTHMUS_DNS_TTL": "7"})
    try:
        return proc, int(until_event(proc, "dns_listening")["port"])
    except AssertionError:
        proc.kill()
        raise


def until_event(proc: subprocess.Popen[str], name: str) -> dict[str, Any]:
    """Read the process's log lines up to the first ``name`` event (the caller's test
    timeout bounds the wait)."""
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, ""):
        event: dict[str, Any] = json.loads(line)
        if event["event"] == name:
            return event
    raise AssertionError(f"the process exited without logging {name}")


def ask(port: int, name: str) -> DNSRecord:
    return DNSRecord.parse(DNSRecord.question(name).send("127.0.0.1", port, timeout=2))


@pytest.mark.timeout(30)
def test_process_serves_the_file_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump_all(objects()))
    with socket.socket() as probe:  # a free port for /metrics
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    proc, port = start(path, "--metrics-port", str(metrics_port))
    try:
        reply = ask(port, "users.shop.global")
        assert [(str(r.rdata), r.ttl) for r in reply.rr] == [("10.96.0.10", 7)]  # env TTL
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        assert "isthmus_dns_queries_total 1.0" in text
        assert 'isthmus_dns_slow_path_outcomes_total{outcome="noerror"} 1.0' in text
        path.write_text(yaml.safe_dump_all([global_service("users", "shop", ["10.9.9.9"])
                                            .to_wire()]))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while [str(r.rdata) for r in ask(port, "users.shop.global").rr] != ["10.9.9.9"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        path.write_text("not: [valid")  # a bad reload keeps the last good data
        proc.send_signal(signal.SIGHUP)
        until_event(proc, "dns_static_reload_failed")
        assert [str(r.rdata) for r in ask(port, "users.shop.global").rr] == ["10.9.9.9"]
        proc.send_signal(signal.SIGTERM)
        until_event(proc, "dns_stopping")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_static_file_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: GlobalService\nmetadata: {name: x}\n")
    result = subprocess.run([ISTHMUS, "dns", "--port", "0", "--static-file", str(path)],
                            check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "isthmus: error:" in result.stderr and "not a valid GlobalService" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_kubeconfig_is_a_clean_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [ISTHMUS, "dns", "--port", "0", "--kubeconfig", str(tmp_path / "missing")],
        check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    missing = tmp_path / "missing"
    assert result.stderr.startswith(f"isthmus: error: no kubeconfig file at {missing}: pass ")
    assert len(result.stderr.splitlines()) == 1  # one clear line, no traceback
