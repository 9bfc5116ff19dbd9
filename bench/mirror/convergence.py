"""Mirror convergence benchmark (not a test): label N Services for export in one cluster,
time until the peer has each one's GlobalService *and* mirror Service; then delete them all
and time until both are gone. Reports p50/p99/max and the controllers' resident memory.

Two real control planes; both mirrors run as separate processes (``isthmus mirror``) as
their ServiceAccount, catalog over gRPC/mTLS on loopback.

    .venv/bin/python bench/mirror/convergence.py --sizes 10,100,1000 [--resync 10000 --restarts 3]

``--against REV`` also restarts the importer with git revision REV's code on the same
resync world, alternating with the working tree's (``other_revision``): a before/after
comparison this drifting machine cannot blur.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mirror"))
sys.path.insert(0, str(ROOT / "bench" / "mirror"))

from apiserver_ceiling import endpoint_slice, global_service, service  # noqa: E402
from mirror_helpers import Mesh, Pki, ensure_namespace  # noqa: E402
from other_revision import OtherRevision  # noqa: E402

from isthmus.devcluster import ControlPlane  # noqa: E402
from isthmus.devcluster.controlplane import free_port  # noqa: E402
from isthmus.kube.client import KubeApi  # noqa: E402
from isthmus.kube.reflector import Reflector  # noqa: E402
from isthmus.kube.resources import ENDPOINTSLICES, GLOBALSERVICES, SERVICES  # noqa: E402

# RSS is read at idle and again this long after: the steady state, not the tail of the work
_SETTLE = 3.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used: on this 2-core machine the API server
    competes with the mirror for the cores, so the mirror's own share is reported too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
        return str(r.read().decode())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Controller:
    def __init__(self, name: str, kubeconfig: Path, catalog_port: int,
                 pythonpath: Path | None = None) -> None:
        self.name = name
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "ISTHMUS_MIRROR_KUBECONFIG": str(kubeconfig),
            "ISTHMUS_MIRROR_CATALOG_HOST": "127.0.0.1",
            "ISTHMUS_MIRROR_CATALOG_PORT": str(catalog_port),
            "ISTHMUS_MIRROR_METRICS_HOST": "127.0.0.1",
            "ISTHMUS_MIRROR_METRICS_PORT": str(self.metrics_port),
            "ISTHMUS_MIRROR_LEADER_ELECTION": "false",
            "ISTHMUS_MIRROR_CATALOG_VIA": "direct",  # Links name catalog servers here
            "ISTHMUS_MIRROR_LOG_LEVEL": "warning",
            "ISTHMUS_MIRROR_PORT_RANGE": "20000-60000",
        }
        # An installed package (the image: `pip install .`) starts from compiled bytecode;
        # a shell with PYTHONDONTWRITEBYTECODE set would make every start compile the
        # repository's modules again (~0.1 s here), which is not what a cluster sees.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if pythonpath is not None:  # another revision's code (other_revision)
            env["PYTHONPATH"] = str(pythonpath)
        self.log = tempfile.NamedTemporaryFile(prefix=f"mirror-{name}-", suffix=".log",  # noqa: SIM115
                                               delete=False)
        self.proc = subprocess.Popen([str(ROOT / ".venv/bin/isthmus"), "mirror"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} mirror not ready; log {self.log.name}")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return  # it died on its own: its log stays for a look
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


async def _gather_limited(coros: list[Any], limit: int = 64) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


class Seen:
    """Watch the importing cluster: when each GlobalService / mirror Service appears/goes."""

    def __init__(self, api: KubeApi, ns: str) -> None:
        self.gs = Reflector(api, GLOBALSERVICES, ns)
        self.svc = Reflector(api, SERVICES, ns, label_selector="isthmus.io/mirror=true")
        self.added: dict[tuple[str, str], float] = {}
        self.deleted: dict[tuple[str, str], float] = {}
        self.tasks = [asyncio.create_task(self._run(self.gs, "gs")),
                      asyncio.create_task(self._run(self.svc, "svc"))]

    async def _run(self, reflector: Reflector, kind: str) -> None:
        async for event, obj in reflector.events():
            if obj is None:
                continue
            name = obj["metadata"]["name"]
            if kind == "svc":
                if not name.endswith("-global") or name.count("-") > 1:
                    continue  # pinned mirrors are not timed
                name = name[: -len("-global")]
            now = time.monotonic()
            if event == "ADDED":
                self.added.setdefault((kind, name), now)
            elif event == "DELETED":
                self.deleted.setdefault((kind, name), now)

    def both(self, which: dict[tuple[str, str], float], name: str) -> float | None:
        a, b = which.get(("gs", name)), which.get(("svc", name))
        return max(a, b) if a is not None and b is not None else None

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def run_size(mesh: Mesh, n: int, importer_pid: int, exporter_pid: int) -> dict[str, Any]:
    west, east = mesh["west"].admin, mesh["east"].admin
    ns = f"bench-{n}-{int(time.time()) % 100000}"
    await ensure_namespace(west, ns)
    await ensure_namespace(east, ns)
    names = [f"svc{i:05d}" for i in range(n)]
    await _gather_limited([west.create(SERVICES, {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80}]}}, ns) for name in names])
    seen = Seen(east, ns)
    await seen.gs.synced.wait()
    await seen.svc.synced.wait()
    t0: dict[str, float] = {}

    async def label(name: str) -> None:
        t0[name] = time.monotonic()
        await west.request("PATCH", SERVICES.path(ns, name),
                           body={"metadata": {"labels": {"isthmus.io/export": "true"}}},
                           content_type="application/merge-patch+json")

    start = time.monotonic()
    await _gather_limited([label(name) for name in names])
    while any(seen.both(seen.added, name) is None for name in names):
        if time.monotonic() - start > 600:
            raise RuntimeError("convergence timed out")
        await asyncio.sleep(0.05)
    add = [seen.both(seen.added, name) - t0[name] for name in names]  # type: ignore[operator]
    add_total = max(seen.both(seen.added, name) for name in names) - start  # type: ignore[type-var]
    mem_importer, mem_exporter = rss_mb(importer_pid), rss_mb(exporter_pid)

    t0.clear()

    async def delete(name: str) -> None:
        t0[name] = time.monotonic()
        await west.delete(SERVICES, name, ns)

    start = time.monotonic()
    await _gather_limited([delete(name) for name in names])
    while any(seen.both(seen.deleted, name) is None for name in names):
        if time.monotonic() - start > 600:
            raise RuntimeError("delete convergence timed out")
        await asyncio.sleep(0.05)
    dele = [seen.both(seen.deleted, name) - t0[name] for name in names]  # type: ignore[operator]
    await seen.stop()
    ref = await floor(east, n)
    return {"n": n, "add": add, "add_total": add_total, "del": dele,
            "rss_importer": mem_importer, "rss_exporter": mem_exporter,
            "floor": ref["exist"], "floor_all": ref["all"]}


async def floor(api: KubeApi, n: int, in_flight: int = 16) -> dict[str, list[float]]:
    """The reference for the burst, in the same run on the same (importing) API server: a
    bare client with the mirror's in-flight limit makes, for ``n`` services at once, the
    writes the mirror's urgent pass makes (GlobalService, Service and EndpointSlice
    together). No controller can converge faster than this. Returns per service the seconds
    from the start until those exist ("exist", the benchmark's t1) and until a GlobalService
    status write after them is done too ("all": what DNS would need if it read VIPs only from
    the status)."""
    ns = f"floor-{n}-{int(time.time()) % 100000}"
    await ensure_namespace(api, ns)
    sem = asyncio.Semaphore(in_flight)
    exist: list[float] = []
    done: list[float] = []

    async def write(res: Any, obj: dict[str, Any], subresource: str | None = None) -> None:
        async with sem:
            await api.apply(res, obj, field_manager="floor", force=True,
                            subresource=subresource)

    async def one(i: int) -> None:
        gs = global_service(ns, i)
        await asyncio.gather(write(SERVICES, service(ns, i)),
                             write(ENDPOINTSLICES, endpoint_slice(ns, i)),
                             write(GLOBALSERVICES, gs))
        exist.append(time.monotonic() - start)
        status = {"apiVersion": gs["apiVersion"], "kind": gs["kind"],
                  "metadata": gs["metadata"], "status": {"vips": ["10.112.0.1"]}}
        await write(GLOBALSERVICES, status, "status")
        done.append(time.monotonic() - start)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    for res in (GLOBALSERVICES, ENDPOINTSLICES):
        await api.request("DELETE", res.path(ns))  # deletecollection
    await _gather_limited([api.delete(SERVICES, f"s{i}", ns) for i in range(n)])
    return {"exist": exist, "all": done}


async def resync(mesh: Mesh, n: int, kubeconfig: Path, catalog_port: int,
                 exporter_pid: int, procs: list[Controller],
                 restarts: int = 1, against: OtherRevision | None = None) -> dict[str, float]:
    """Import ``n`` services, then restart the importer ``restarts`` times and time each
    full resync; with ``against``, each restart is followed by one of that revision (its
    keys end in ``_<rev>``)."""
    west, east = mesh["west"].admin, mesh["east"].admin
    ns = f"resync-{n}"
    await ensure_namespace(west, ns)
    await ensure_namespace(east, ns)
    await _gather_limited([west.create(SERVICES, {
        "metadata": {"name": f"r{i:05d}", "namespace": ns,
                     "labels": {"isthmus.io/export": "true"}},
        "spec": {"ports": [{"name": "http", "port": 80}]}}, ns) for i in range(n)])
    # Done = every GlobalService has its VIPs in status; watched, not LISTed in a loop (a
    # LIST of thousands of GlobalServices a second would load the API server measured).
    done = Reflector(east, GLOBALSERVICES, ns, transform=lambda o: {
        "metadata": {k: o["metadata"].get(k) for k in ("name", "namespace", "resourceVersion")},
        "vips": bool((o.get("status") or {}).get("vips"))})
    watching = asyncio.create_task(_drain(done))
    importer = Controller("east-resync", kubeconfig, catalog_port)
    procs.append(importer)  # stopped by main's cleanup if this is interrupted
    start = time.monotonic()
    await importer.wait_ready(120)
    while sum(1 for o in done.store.values() if o["vips"]) < n:
        if time.monotonic() - start > 3600:
            raise RuntimeError("initial import timed out")
        await asyncio.sleep(0.2)
    first_vips = time.monotonic() - start
    watching.cancel()
    # The VIPs are written in the urgent pass; the pinned objects follow in the deferred one.
    # Stopping before that is done would leave the resync below to write them.
    await _idle(importer)
    first = time.monotonic() - start
    await asyncio.sleep(_SETTLE)
    rss_first = rss_mb(importer.proc.pid)
    importer.stop()
    out: dict[str, float] = {"n": n, "initial_import_vips_s": first_vips,
                             "initial_import_s": first, "rss_initial_mb": rss_first}
    variants = [("", None)]
    if against is not None:
        variants.append((f"_{against.rev}", against.pythonpath))
    for run, (tag, pythonpath) in ((r, v) for r in range(1, restarts + 1) for v in variants):
        # Each restart is a fresh process on the same world: the spread between them is
        # the run-to-run noise of the machine, reported rather than averaged away.
        importer = Controller(f"east-resync{run + 1}{tag}", kubeconfig, catalog_port,
                              pythonpath)
        procs.append(importer)
        start = time.monotonic()
        await importer.wait_ready(120)
        ready = time.monotonic() - start
        written = await _idle(importer)
        total = time.monotonic() - start
        cpu = cpu_s(importer.proc.pid)
        rss_idle = rss_mb(importer.proc.pid)
        await asyncio.sleep(_SETTLE)
        rss = rss_mb(importer.proc.pid)
        importer.stop()
        suffix = ("" if run == 1 else f"_{run}") + tag
        out.update({f"resync_ready_s{suffix}": ready, f"resync_idle_s{suffix}": total,
                    f"resync_importer_cpu_s{suffix}": cpu,
                    f"resync_writes{suffix}": written, f"rss_at_idle_mb{suffix}": rss_idle,
                    f"rss_after_resync_mb{suffix}": rss})
    out["rss_exporter_mb"] = rss_mb(exporter_pid)
    return out


async def _idle(importer: Controller) -> float:
    """Wait until the peer's snapshot is in (its catalog version is set) and no key is
    pending; the objects the importer has written so far."""
    while True:
        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{importer.metrics_port}/metrics")
        lines = text.splitlines()
        pending = [ln for ln in lines if ln.startswith("isthmus_mirror_pending_keys")]
        synced = any(ln.startswith("isthmus_mirror_peer_catalog_version{") and
                     float(ln.split()[-1]) > 0 for ln in lines)
        written = sum(float(ln.split()[-1]) for ln in lines
                      if ln.startswith("isthmus_mirror_objects_written_total"))
        if synced and pending and float(pending[0].split()[-1]) == 0:
            return written
        await asyncio.sleep(0.1)


async def _drain(reflector: Reflector) -> None:
    async for _ in reflector.events():
        pass


def fmt(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1000:7.0f} {pct(values, 0.99) * 1000:7.0f} "
            f"{max(values) * 1000:7.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--resync", type=int, default=0, help="also time a full resync of N")
    parser.add_argument("--restarts", type=int, default=1,
                        help="restarts of the importer timed on the resync world")
    parser.add_argument("--against", default="",
                        help="git revision whose importer also restarts on the resync world")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-bench-"))
    cps = [ControlPlane("west", service_cidr="10.96.0.0/12").start(),
           ControlPlane("east", service_cidr="10.112.0.0/12").start()]
    # tokens outlast the run: restarts after a long initial import must still authenticate
    mesh = Mesh(Pki(), workdir, token_seconds=6 * 3600)
    procs: list[Controller] = []
    against = OtherRevision(args.against) if args.against and args.resync else None
    try:
        for cp in cps:
            await mesh.add(cp)
        await mesh.link("west", "east")
        await mesh.link("east", "west")
        exporter = Controller("west", mesh["west"].sa_kubeconfig, mesh["west"].catalog_port)
        importer = Controller("east", mesh["east"].sa_kubeconfig, mesh["east"].catalog_port)
        procs += [exporter, importer]
        await exporter.wait_ready()
        await importer.wait_ready()
        rows = []
        for n in sizes:
            rows.append(await run_size(mesh, n, importer.proc.pid, exporter.proc.pid))
        print("\nconvergence (ms): label → GlobalService + mirror Service in the peer")
        print(f"{'N':>6} | {'add p50':>7} {'p99':>7} {'max':>7} | {'del p50':>7} {'p99':>7} "
              f"{'max':>7} | burst s | RSS imp/exp MB")
        for r in rows:
            print(f"{r['n']:>6} | {fmt(r['add'])} | {fmt(r['del'])} | {r['add_total']:7.2f} | "
                  f"{r['rss_importer']:.0f}/{r['rss_exporter']:.0f}")
        print("\nreference (ms): a bare client making the urgent writes on the importing API "
              "server (16 in flight)")
        print(f"{'N':>6} | {'exist p50':>9} {'p99':>7} {'max':>7} | {'+status p50':>11} "
              f"{'p99':>7} {'max':>7} | mirror p99 / reference p99")
        for r in rows:
            ratio = pct(r["add"], 0.99) / max(pct(r["floor"], 0.99), 1e-9)
            print(f"{r['n']:>6} | {fmt(r['floor']):>25} | {fmt(r['floor_all']):>27} | "
                  f"{ratio:.2f}x")
        if args.resync:
            importer.stop()
            procs.remove(importer)
            res = await resync(mesh, args.resync, mesh["east"].sa_kubeconfig,
                               mesh["east"].catalog_port, exporter.proc.pid, procs,
                               args.restarts, against)
            print("\nfull resync:", " ".join(f"{k}={v:.1f}" for k, v in res.items()))
            if against is not None:
                theirs = f"_{against.rev}"
                for label, mine in (("working tree", False), (against.rev, True)):
                    idle = [v for k, v in res.items() if k.startswith("resync_idle_s")
                            and k.endswith(theirs) == mine]
                    print(f"restart → idle, {label}: median {statistics.median(idle):.1f} s "
                          f"of {', '.join(f'{v:.1f}' for v in idle)}")
    finally:
        for p in procs:
            p.stop()
        await mesh.close()
        for cp in cps:
            cp.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if against is not None:
            against.close()


if __name__ == "__main__":
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so control planes are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
