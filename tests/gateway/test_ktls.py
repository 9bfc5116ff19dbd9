"""Kernel TLS or userspace TLS: the pure choice as a table, then what this host allows
(this kernel has no TLS ULP, and Python 3.11's ssl has no OP_ENABLE_KTLS), so a running
gateway must report the userspace fallback and say why."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from gw_helpers import Pki, running
from structlog.testing import capture_logs

from isthmus.gateway import ktls
from isthmus.gateway.ktls import DataPath, choose_data_path


@pytest.mark.parametrize(
    ("ssl_ktls", "kernel_tls", "built", "expected"),
    [
        pytest.param(True, True, True, DataPath("kernel"), id="all-three"),
        pytest.param(False, True, True, DataPath("userspace", ("ssl_without_ktls",)),
                     id="python-ssl-lacks-ktls"),
        pytest.param(True, False, True, DataPath("userspace", ("kernel_without_tls_ulp",)),
                     id="kernel-lacks-tls-ulp"),
        pytest.param(True, True, False,
                     DataPath("userspace", ("gateway_without_kernel_path",)),
                     id="no-kernel-path-in-gateway"),
        pytest.param(False, False, False, DataPath("userspace", (
            "ssl_without_ktls", "kernel_without_tls_ulp", "gateway_without_kernel_path")),
            id="none"),
    ],
)
def test_choose_data_path(ssl_ktls: bool, kernel_tls: bool, built: bool,
                          expected: DataPath) -> None:
    assert choose_data_path(ssl_ktls=ssl_ktls, kernel_tls=kernel_tls,
                            kernel_path_built=built) == expected


def _kernel_accepts_tls_ulp() -> bool:
    """An independent probe: setsockopt(TCP_ULP, "tls") on a connected socket."""
    with (socket.create_server(("127.0.0.1", 0)) as listener,
          socket.create_connection(listener.getsockname()) as client):
        conn, _ = listener.accept()
        with conn:
            try:
                client.setsockopt(socket.IPPROTO_TCP, 31, b"tls")
            except OSError:
                return False
    return True


def test_kernel_probe_matches_setsockopt() -> None:
    assert ktls.kernel_has_tls_ulp() is _kernel_accepts_tls_ulp()


def test_kernel_probe_reads_available_ulps(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    listed = tmp_path / "tcp_available_ulp"
    listed.write_text("mptcp tls\n")
    monkeypatch.setattr(ktls, "AVAILABLE_ULP", listed)
    assert ktls.kernel_has_tls_ulp() is True


def test_this_host_falls_back_to_userspace() -> None:
    assert not _kernel_accepts_tls_ulp()  # this kernel: no TLS ULP
    expected = ("kernel_without_tls_ulp", "gateway_without_kernel_path")
    if not hasattr(ssl, "OP_ENABLE_KTLS"):  # Python 3.11 (3.12+ has the option)
        expected = ("ssl_without_ktls", *expected)
    assert ktls.detect_data_path() == DataPath("userspace", expected)


async def test_running_gateway_reports_the_userspace_path(pki: Pki) -> None:
    with capture_logs() as logs:
        async with running(pki.tls("east")) as gw:
            assert gw.data_path is not None
            assert gw.data_path.kind == "userspace"
    started = [e for e in logs if e["event"] == "gateway started"]
    assert started and started[0]["data_path"] == "userspace"
    assert "kernel_without_tls_ulp" in started[0]["data_path_reasons"]
