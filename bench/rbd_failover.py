"""RBD on two real mirrored Ceph clusters: failover of N mirrored images, parallel vs one at a time, and
create/delete latency.

    python bench/rbd_failover.py [--volumes 200] [--sequential 200] [--mode journal|snapshot]
                                 [--workers 32] [--dir /tmp/cb-ceph-bench] [--keep]

Starts the pair with cinderblock.devtools.ceph_cluster (or reuses a running one in --dir). Failover time
is from the driver call until every volume is usable on the secondary: failover_host returned and each
image took a 4 KiB write there. "One at a time" is the same driver with one worker (what OpenStack
Cinder's RBD driver does: demote all in a loop, then promote in a loop); --sequential N times that on
the first N volumes only (the per-volume time extrapolates linearly) when the full run is too long.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cinderblock.devtools import ceph_cluster  # noqa: E402
from cinderblock.volume.driver import PRIMARY_BACKEND_ID, DriverOptions, VolumeRef  # noqa: E402
from cinderblock.volume.drivers.rbd.driver import RBDDriver  # noqa: E402


def make_driver(a: ceph_cluster.Cluster, b: ceph_cluster.Cluster, workers: int, active: str | None = None) -> RBDDriver:
    options = {
        "volume_backend_name": "rbd-bench", "rbd_pool": "rbd", "rbd_user": "admin",
        "rbd_ceph_conf": str(a.conf), "rbd_cluster_name": a.name,
        "replication_device": [f"backend_id:{b.name}, conf:{b.conf}, user:admin"],
        "replication_connect_timeout": 5, "rbd_failover_workers": workers, "rbd_failover_promote_timeout": 120,
        "max_over_subscription_ratio": "20.0",
    }
    driver = RBDDriver("rbd-bench", DriverOptions(options), tempfile.gettempdir())
    driver.set_active_backend(active)
    driver.do_setup()
    return driver


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{label}: n={len(ms)} mean {statistics.mean(ms):.1f} ms, p50 {pct(ms, 0.5):.1f} ms, "
            f"p95 {pct(ms, 0.95):.1f} ms, max {max(ms):.1f} ms")


def usable(driver: RBDDriver, volumes: list[VolumeRef], workers: int) -> None:
    import rbd  # type: ignore[import-not-found]

    def write(volume: VolumeRef) -> None:
        with rbd.Image(driver.sites.ioctx(), volume.name) as image:
            image.write(b"\x5a" * 4096, 0)
            image.flush()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write, volumes))


def wait_replaying(driver: RBDDriver, volumes: list[VolumeRef]) -> float:
    target = driver.sites.client(driver.sites.config_for(driver.sites.targets[0].backend_id))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        ready = list(pool.map(lambda v: driver.failover.target_ready(target, v.name), volumes))
    if not all(ready):
        raise SystemExit(f"{ready.count(False)} image(s) never finished their initial sync")
    return time.monotonic() - started


def failover_round(a, b, volumes: list[VolumeRef], workers: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(failover time until usable, failback time), each volume clean (primary alive)."""
    driver = make_driver(a, b, workers)
    wait_replaying(driver, volumes)
    started = time.monotonic()
    result = driver.failover_host(volumes, b.name)
    usable(driver, volumes, max(workers, 8))
    took = time.monotonic() - started
    failed = [r for r in result.volumes if not r.ok]
    if failed:
        raise SystemExit(f"failover: {len(failed)} failed, e.g. {failed[0]}")
    started = time.monotonic()
    driver.failover_host(volumes, PRIMARY_BACKEND_ID)
    back = time.monotonic() - started
    driver.stop()
    return took, back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=200, help="volumes failed over one at a time")
    parser.add_argument("--mode", choices=("journal", "snapshot"), default="journal")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "cb-ceph-bench"))
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args()

    base = Path(args.dir)
    clusters = ceph_cluster.existing(base)
    started_here = False
    if len(clusters) != 2 or not all(c.pid("mon") for c in clusters):
        began = time.monotonic()
        clusters = ceph_cluster.start(base, pair=True)
        started_here = True
        print(f"clusters started in {time.monotonic() - began:.1f}s")
    a, b = clusters
    try:
        driver = make_driver(a, b, args.workers)
        plain = [VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="rbd") for _ in range(50)]
        create = []
        for volume in plain:
            t = time.monotonic()
            driver.create_volume(volume)
            create.append(time.monotonic() - t)
        delete = []
        for volume in plain:
            t = time.monotonic()
            driver.delete_volume(volume)
            delete.append(time.monotonic() - t)
        print(describe("create (1 GiB, not replicated)", create))
        print(describe("delete (1 GiB, not replicated)", delete))

        specs = {"replication_enabled": "<is> True", "replication:mode": args.mode}
        volumes = [VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="rbd", extra_specs=specs)
                   for _ in range(args.volumes)]
        create = []
        for volume in volumes:
            t = time.monotonic()
            driver.create_volume(volume)
            create.append(time.monotonic() - t)
        print(describe(f"create (1 GiB, replicated, {args.mode})", create))
        driver.stop()
        print(f"initial sync of {len(volumes)} images: {wait_replaying(make_driver(a, b, 1), volumes):.1f}s")

        parallel, back = failover_round(a, b, volumes, args.workers)
        print(f"failover of {len(volumes)} {args.mode}-mirrored images, {args.workers} workers: {parallel:.1f}s "
              f"until all usable ({parallel / len(volumes) * 1000:.0f} ms/volume); failback {back:.1f}s")
        subset = volumes[:max(1, min(args.sequential, len(volumes)))]
        sequential, back1 = failover_round(a, b, subset, 1)
        per = sequential / len(subset)
        estimate = per * len(volumes)
        note = "" if len(subset) == len(volumes) else f" (measured on {len(subset)}, extrapolated)"
        print(f"failover one at a time: {sequential:.1f}s for {len(subset)} ({per * 1000:.0f} ms/volume), "
              f"{estimate:.1f}s for {len(volumes)}{note}; failback {back1:.1f}s")
        print(f"speed-up: {estimate / parallel:.1f}x")

        driver = make_driver(a, b, args.workers)
        delete = []
        for volume in volumes:
            t = time.monotonic()
            driver.delete_volume(volume)
            delete.append(time.monotonic() - t)
        print(describe(f"delete (1 GiB, replicated, {args.mode})", delete))
        driver.stop()
    finally:
        if started_here and not args.keep:
            ceph_cluster.stop(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
