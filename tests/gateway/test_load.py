"""Bounded load: thousands of concurrent connections, then a sustained request rate for a
minute, through a real gateway pair (CLI processes, uvloop). Passes only with zero errors,
descriptors back to baseline and bounded memory. Timings are not asserted."""

from __future__ import annotations

import asyncio
import resource
import subprocess
from pathlib import Path

import pytest
from gw_helpers import (
    Pki,
    echo_backend,
    endpoint_slice,
    free_port,
    global_service,
    gs_endpoint,
    link,
    proc_fds,
    proc_rss_kb,
    service,
    write_routes,
    write_tls,
)

pytestmark = pytest.mark.slow
ISTHMUS = str(Path(__file__).parents[2] / ".venv" / "bin" / "isthmus")
CONCURRENT = 2000
SUSTAIN_SECONDS = 60
RATE = 300  # new connections per second, each one request/response
PERSISTENT = 50  # plus persistent connections doing request/response continuously


async def wait_ready(port: int, procs: list[subprocess.Popen[bytes]]) -> None:
    # Two gateway processes start slowly on a loaded machine: wait for as long as they live
    # (the test timeout bounds it), not for a fixed count of tries.
    while all(p.poll() is None for p in procs):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"ready?")
            if await asyncio.wait_for(r.read(6), 2) == b"ready?":
                w.close()
                return
            w.close()
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("a gateway exited before the pair was ready (see its log)")


async def test_load(pki: Pki, tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    assert want >= 4 * CONCURRENT + 1000
    backend = await echo_backend()
    east_port, out_port = free_port(), free_port()
    east_routes = write_routes(tmp_path / "east.yaml",
                               services=[service("shop", "echo", 80)],
                               slices=[endpoint_slice("shop", "echo",
                                                      [("127.0.0.1", backend.port)])],
                               links=[link("west")])
    west_routes = write_routes(tmp_path / "west.yaml", links=[link("east", port=east_port)],
                               gss=[global_service("shop", "echo", 80, out_port,
                                                   [gs_endpoint("east", east_port)])])
    common = ["--admin-address", "", "--no-access-log", "--pool-idle-ttl", "3",
              "--max-connections", "20000"]
    logs = [open(tmp_path / n, "wb") for n in ("east.log", "west.log")]  # noqa: SIM115, ASYNC230
    east = subprocess.Popen([ISTHMUS, "gateway", "--routes-file", east_routes,  # noqa: ASYNC220
                             "--inbound-address", f"127.0.0.1:{east_port}", *common,
                             "--backend-allow-loopback",  # the echo backend is on loopback
                             *write_tls(pki, "east", tmp_path / "e")],
                            stdout=logs[0], stderr=logs[0])
    west = subprocess.Popen([ISTHMUS, "gateway", "--routes-file", west_routes,  # noqa: ASYNC220
                             "--inbound-address", "127.0.0.1:0", "--outbound-host",
                             "127.0.0.1", *common, *write_tls(pki, "west", tmp_path / "w")],
                            stdout=logs[1], stderr=logs[1])
    errors: list[str] = []
    try:
        await wait_ready(out_port, [east, west])
        await asyncio.sleep(3.5)  # let the readiness tunnel expire from the pool
        base_fds = {p.pid: proc_fds(p.pid) for p in (east, west)}
        base_rss = {p.pid: proc_rss_kb(p.pid) for p in (east, west)}

        # 1. thousands of concurrent connections, all open at once
        async def hold_one(i: int, opened: asyncio.Barrier) -> None:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", out_port)
                msg = b"%08d" % i
                w.write(msg)
                if await asyncio.wait_for(r.readexactly(8), 90) != msg:
                    errors.append(f"concurrent {i}: wrong echo")
                await asyncio.wait_for(opened.wait(), 120)
                w.write_eof()
                if await asyncio.wait_for(r.read(), 30) != b"":
                    errors.append(f"concurrent {i}: trailing bytes")
                w.close()
            except Exception as exc:
                errors.append(f"concurrent {i}: {exc!r}")
                opened.abort() if False else None

        barrier = asyncio.Barrier(CONCURRENT)
        sem = asyncio.Semaphore(500)  # open them 500 at a time (listen backlogs)

        async def paced(i: int) -> None:
            async with sem:
                pass
            await hold_one(i, barrier)

        await asyncio.gather(*(paced(i) for i in range(CONCURRENT)))
        assert not errors, errors[:5]
        peak_fds = {p.pid: proc_fds(p.pid) for p in (east, west)}

        # 2. a sustained rate for a minute: new connections + persistent request/response
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + SUSTAIN_SECONDS
        done = {"new": 0, "persistent": 0}

        async def one_request(i: int) -> None:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", out_port)
                body = b"x" * 1024
                w.write(body)
                w.write_eof()
                if await asyncio.wait_for(r.read(), 30) != body:
                    errors.append(f"rate {i}: wrong echo")
                w.close()
                done["new"] += 1
            except Exception as exc:
                errors.append(f"rate {i}: {exc!r}")

        async def persistent(i: int) -> None:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", out_port)
                body = b"p" * 1024
                while loop.time() < stop_at:
                    w.write(body)
                    if await asyncio.wait_for(r.readexactly(1024), 30) != body:
                        errors.append(f"persistent {i}: wrong echo")
                        return
                    done["persistent"] += 1
                    await asyncio.sleep(0.05)
                w.close()
            except Exception as exc:
                errors.append(f"persistent {i}: {exc!r}")

        tasks = [asyncio.ensure_future(persistent(i)) for i in range(PERSISTENT)]
        i = 0
        while loop.time() < stop_at:
            tick = loop.time()
            for _ in range(RATE // 10):
                tasks.append(asyncio.ensure_future(one_request(i)))
                i += 1
            await asyncio.sleep(max(0.0, 0.1 - (loop.time() - tick)))
        await asyncio.gather(*tasks)
        assert not errors, errors[:5]
        assert done["new"] == i
        assert done["persistent"] > PERSISTENT * 10

        # 3. back to baseline: descriptors (pooled tunnels expire after 3 s), bounded memory
        settle = loop.time() + 30  # a deadline, not a bound: typically one pool TTL
        while any(proc_fds(p.pid) > base_fds[p.pid] + 8 for p in (east, west)):
            if loop.time() > settle:
                break  # the assertions below say which process kept what
            await asyncio.sleep(0.5)
        for p in (east, west):
            fds = proc_fds(p.pid)
            assert fds <= base_fds[p.pid] + 8, (p.args[2:4], base_fds[p.pid], peak_fds[p.pid], fds)
            growth_mb = (proc_rss_kb(p.pid) - base_rss[p.pid]) / 1024
            assert growth_mb < 150, f"RSS grew {growth_mb:.0f} MB"
        assert east.poll() is None and west.poll() is None
    finally:
        for p in (east, west):
            p.terminate()
        for p in (east, west):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()
        backend.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
