"""The main job on the local rig: linked clusters, and a call across them by a .global name.

    python multicluster-e2e/rig.py [--clusters west,east] [--keep] [--workdir DIR]

Starts each cluster (a real control plane plus isthmus' mirror, gateway and DNS as
processes) in its own network namespace, links them with `isthmus join`, runs an HTTP
workload `users` in namespace `shop` of the last cluster, exports it, and calls
http://users.shop.global/ from inside the first cluster: glibc DNS -> isthmus-dns ->
mirror VIP -> kube-proxy -> local gateway -> mTLS -> peer gateway -> the workload.
Everything is torn down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from isthmus.devcluster.controlplane import ControlPlaneError
from isthmus.devcluster.rig import Rig, needs_root
from isthmus.logging import configure


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", default="west,east")
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep logs, certificates and etcd data here (kept afterwards); "
                             "by default a temporary folder, removed at the end")
    args = parser.parse_args()
    configure("warning")
    reason = needs_root()
    if reason:
        print(f"[rig] {reason}", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    if len(names) < 2:
        print("[rig] give at least two clusters", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isthmus-rig-"))
    remove_workdir = args.workdir is None
    print(f"[rig] work directory {workdir} ("
          + ("removed at the end unless it fails" if remove_workdir else "kept") + ")",
          flush=True)
    rig = Rig(names, workdir)
    started = time.monotonic()
    try:
        rig.up()
        exporter, caller = names[-1], names[0]
        print(f"[rig] {exporter}: workload users.shop, labelled isthmus.io/export=true", flush=True)
        rig.deploy_demo(exporter)
        url = "http://users.shop.global/"
        print(f"[rig] {caller}: curl {url}", flush=True)
        answer = rig.wait_call(caller, url)
        print(f"[rig] {caller} -> {answer.strip()}")
        print(f"[rig] {caller}: getent hosts users.shop.global -> "
              f"{', '.join(rig.resolve(caller, 'users.shop.global'))}")
        pinned = f"http://users.shop.{exporter}.global/"
        print(f"[rig] {caller}: curl {pinned} -> {rig.wait_call(caller, pinned).strip()}")
        print(rig.isthmus("status", "--context", caller, "--kubeconfig", rig.kubeconfig))
        print(f"[rig] done in {time.monotonic() - started:.0f}s")
        if args.keep:
            print(f"[rig] running; KUBECONFIG={rig.kubeconfig}\n"
                  f"[rig] try: ip netns exec isthmus-{caller} curl {url}   (Ctrl-C stops)")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except ControlPlaneError as exc:
        remove_workdir = False  # its logs are what explains the failure
        print(f"[rig] FAILED: {exc}\n{rig.logs()}\n[rig] logs and data kept in {workdir}",
              file=sys.stderr)
        return 1
    finally:
        rig.down()
        if remove_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
