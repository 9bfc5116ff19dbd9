"""Log lines are JSON, and secrets never reach them."""

from __future__ import annotations

import json

import pytest
import structlog

from isthmus.logging import REDACTED, configure, get_logger, redact_secrets

PEM_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI...\n-----END EC PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("fields", "redacted"),
    [
        pytest.param({"token": "abc"}, {"token"}, id="token-key"),
        pytest.param({"Password": "x"}, {"Password"}, id="case-insensitive-key"),
        pytest.param({"blob": PEM_KEY}, {"blob"}, id="pem-private-key-value"),
        pytest.param({"blob": PEM_KEY.encode()}, {"blob"}, id="pem-bytes"),
        pytest.param({"cluster": "east", "cert": "-----BEGIN CERTIFICATE-----"}, set(), id="public-stays"),
    ],
)
def test_redaction(fields: dict[str, object], redacted: set[str]) -> None:
    out = redact_secrets(None, "info", dict(fields))
    assert {k for k, v in out.items() if v == REDACTED} == redacted


def test_rendered_lines_are_json_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info")
    try:
        get_logger("t").info("loaded", cluster="west", key=PEM_KEY)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["event"] == "loaded" and record["cluster"] == "west"
        assert record["key"] == REDACTED
        assert "PRIVATE KEY" not in line
    finally:
        structlog.reset_defaults()
