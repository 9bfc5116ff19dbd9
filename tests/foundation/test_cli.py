"""The isthmus command: help that reads well, settings from flags and environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pydantic
import pytest
from click.testing import CliRunner
from pydantic_settings import SettingsConfigDict

from isthmus.cli import SUBCOMMANDS, cli, main
from isthmus.errors import ConfigError
from isthmus.settings import ComponentSettings, click_options, load


class DemoSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="ISTHMUS_DEMO_", extra="forbid", frozen=True)

    port: int = pydantic.Field(default=5353, ge=1, le=65535, description="Port to listen on.")
    verbose: bool = pydantic.Field(default=False, description="Say more.")


@click.command()
@click_options(DemoSettings)
def demo(**flags: object) -> None:
    s = load(DemoSettings, flags)
    click.echo(f"{s.port} {s.verbose} {s.log_level}")


def test_top_level_help_lists_each_available_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "<service>.<namespace>.global" in result.output
    assert "crds" in result.output
    for name in ("dns", "trust"):  # built in this tree
        assert name in result.output


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_help(name: str) -> None:
    """Every command that exists in this build has --help that works."""
    command = cli.get_command(click.Context(cli), name)
    if command is None:
        pytest.skip(f"{name} is not built yet")
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


@pytest.mark.parametrize("name", ["mirror", "gateway", "dns"])
def test_component_help_names_what_each_option_takes(name: str) -> None:
    """Options show their type (INTEGER, PATH, a choice ...) and no empty default."""
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert " VALUE " not in result.output
    assert "[default: ]" not in result.output
    assert "INTEGER" in result.output and "TEXT" in result.output


def test_typical_flow_in_help_runs_in_order() -> None:
    """install creates the namespace that cluster-ca and bundle write into, and each
    command carries the options it requires."""
    text = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    flow = text[text.index("Typical flow"):text.index("Options:")]
    order = [flow.index(step) for step in (
        "trust init", "isthmus install", "trust cluster-ca", "trust bundle", "isthmus join")]
    assert order == sorted(order), flow
    for required in ("--cluster", "--trust-domain", "--gateway-address"):
        assert required in flow[flow.index("isthmus install"):flow.index("trust cluster-ca")]


def test_install_help_says_what_it_creates() -> None:
    text = CliRunner().invoke(cli, ["install", "--help"], terminal_width=200).output
    for thing in ("CRDs", "ServiceAccount", "Deployment", "isthmus-cluster", "Lease", "CoreDNS"):
        assert thing in text, thing


def test_missing_kubeconfig_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = subprocess.run(
        [sys.executable, "-m", "isthmus.cli", "status", "--kubeconfig", str(missing)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"isthmus: error: cannot read the cluster: no kubeconfig file at {missing}: pass "
        "--kubeconfig, set KUBECONFIG, or run inside a pod (in-cluster configuration)"
    ]


def test_settings_precedence_flag_over_env_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert runner.invoke(demo, []).output.strip() == "5353 False info"
    monkeypatch.setenv("ISTHMUS_DEMO_PORT", "6000")
    assert runner.invoke(demo, []).output.strip() == "6000 False info"
    assert runner.invoke(demo, ["--port", "7000", "--verbose"]).output.strip() == "7000 True info"


def test_settings_help_shows_description_default_and_env() -> None:
    out = CliRunner().invoke(demo, ["--help"]).output
    assert "Port to listen on." in out
    assert "[default: 5353]" in out
    assert "ISTHMUS_DEMO_PORT" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param({"port": "0"}, "--port", id="out-of-range"),
        pytest.param({"port": "http"}, "--port", id="not-a-number"),
    ],
)
def test_bad_settings_name_the_flag(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(DemoSettings, flags)
    assert message in str(info.value)


def test_errors_become_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    garbage = tmp_path / "not-a-cert.pem"
    garbage.write_bytes(b"\x00\x01 this is not PEM")
    with pytest.raises(SystemExit) as info:
        main(["trust", "inspect", str(garbage)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("isthmus: error:")
    assert len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["trust", "inspect", "/nonexistent/file.pem"])
    assert info.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "isthmus.cli", "no-such-command"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_python_dash_m_keeps_the_exit_status(tmp_path: Path) -> None:
    """``python -m isthmus.cli`` exits like the ``isthmus`` script: a command that ends with
    a warning status (3) must not exit 0."""
    import datetime as dt

    from isthmus.trust import create_root

    soon = create_root("example.org", lifetime=dt.timedelta(days=90),  # 10 days left
                       now=dt.datetime.now(dt.UTC) - dt.timedelta(days=80))
    pem = tmp_path / "root.pem"
    pem.write_bytes(soon.cert_pem())
    proc = subprocess.run([sys.executable, "-m", "isthmus.cli", "trust", "check", str(pem)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "WARNING" in proc.stdout
