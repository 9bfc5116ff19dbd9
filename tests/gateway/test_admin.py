"""Admin HTTP, metrics, the access log."""

from __future__ import annotations

import asyncio

import aiohttp
from gw_helpers import Pki, pair
from structlog.testing import capture_logs


async def test_admin_endpoints_and_access_log(pki: Pki) -> None:
    async with pair(pki, config_endpoint=True) as p:
        with capture_logs() as logs:
            r, w = await p.connect()
            w.write(b"12345")
            w.write_eof()
            assert await asyncio.wait_for(r.read(), 5) == b"12345"
            w.close()
            # Each side logs its line once its half closes: wait for both (a deadline only).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while len({e.get("direction") for e in logs if e["event"] == "connection"}) < 2:
                assert loop.time() < deadline, logs
                await asyncio.sleep(0.01)
        lines = [e for e in logs if e["event"] == "connection"]
        directions = {e["direction"]: e for e in lines}
        assert set(directions) == {"inbound", "outbound"}
        out = directions["outbound"]
        assert out["target"] == "echo.shop:80" and out["peer_cluster"] == "east"
        assert out["bytes_sent"] == 5 and out["bytes_received"] == 5 and out["result"] == "ok"
        assert out["source"].startswith("127.0.0.1:") and out["duration_ms"] >= 0
        assert directions["inbound"]["peer_cluster"] == "west"
        base = f"http://127.0.0.1:{p.west.admin_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/config") as resp:
                config = await resp.json()
                assert config["outbound"][0]["target"] == "echo.shop:80"
                assert config["outbound"][0]["listenPort"] == p.outbound_port
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
                assert 'isthmus_gateway_connections_total{direction="outbound",peer_cluster="east",result="ok",service="echo.shop"} 1.0' in text
                assert "isthmus_gateway_connect_seconds_bucket" in text
            east_base = f"http://127.0.0.1:{p.east.admin_port}"
            async with http.get(f"{east_base}/config") as resp:
                config = await resp.json()
                assert config["inbound"][0]["service"] == "echo.shop"
                assert config["links"] == {"west": "example.org"}


async def test_config_is_off_by_default_metrics_and_probes_stay(pki: Pki) -> None:
    async with pair(pki) as p:
        base = f"http://127.0.0.1:{p.east.admin_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/config") as resp:
                assert resp.status == 404
                assert "127.0.0.1" not in await resp.text()
            for path in ("/healthz", "/readyz", "/metrics"):
                async with http.get(f"{base}{path}") as resp:
                    assert resp.status == 200, path
