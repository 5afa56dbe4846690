"""File backend replication at driver level: stream throughput, lag under load, failover of many volumes.

(1) Sequential write speed of the target filesystem (1 GiB, fsync) vs the replication stream sending
    1 GiB of changed extents (every chunk of a 1 GiB volume rewritten, then one cycle). Target: >= 80%.
(2) A steady write load (20 MB/s over 20 replicated volumes, interval 5 s, ~60 s): the worst
    `replication_lag_max_seconds` seen. Target: < 2 x interval.
(3) failover_host of 500 replicated 1 GiB sparse volumes (4 KiB of data each): primary readable
    (final sync), failback, primary lost (promote). Target: well under 10 s.

    python bench/replication_stream.py [--dir /tmp] [--xfs] [--only 1,2,3]

--xfs makes an XFS loop mount (mkfs.xfs -m reflink=1; needs root) for the pool and the target.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cinderblock.volume.driver import DriverOptions, VolumeRef  # noqa: E402
from cinderblock.volume.drivers.file.driver import FileDriver  # noqa: E402

MiB = 1024**2
GiB = 1024**3


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@contextmanager
def xfs_loop(size_gib: int) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        image, mnt = Path(tmp) / "xfs.img", Path(tmp) / "mnt"
        mnt.mkdir()
        with open(image, "wb") as f:
            f.truncate(size_gib * GiB)
        run("mkfs.xfs", "-q", "-m", "reflink=1", str(image))
        run("mount", "-o", "loop", str(image), str(mnt))
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=False)


def make_driver(base: Path, interval: int) -> FileDriver:
    options = DriverOptions({"file_pool_paths": [f"p:{base / 'pool'}"], "target_helper": "local",
                             "volume_backend_name": "bench",
                             "replication_device": [f"backend_id:site-b, path:{base / 'site-b'}"],
                             "replication_interval": interval})
    driver = FileDriver("bench", options, str(base / "state"))
    driver.set_active_backend(None)
    driver.do_setup()
    driver.check_for_setup_error()
    return driver


def create(driver: FileDriver, size_gb: int = 1, **specs: str) -> VolumeRef:
    ref = VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool="p",
                    extra_specs={"replication_enabled": "<is> True", **specs})
    update = driver.create_volume(ref)
    return VolumeRef(id=ref.id, size_gb=size_gb, pool="p", provider_location=update.provider_location,
                     extra_specs=ref.extra_specs)


def fill(path: str, size: int, seed: int) -> None:
    block = random.Random(seed).randbytes(8 * MiB)
    with open(path, "r+b") as f:
        for offset in range(0, size, len(block)):
            f.write(block[: min(len(block), size - offset)])
            block = block[1:] + block[:1]  # every chunk differs from the last round's
        f.flush()
        os.fsync(f.fileno())


def disk_write_speed(directory: Path, size: int = GiB) -> float:
    path = directory / f"ddtest-{uuid.uuid4().hex[:6]}"
    block = random.Random(1).randbytes(8 * MiB)
    started = time.monotonic()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.monotonic() - started
    path.unlink()
    return size / elapsed


def quiesce() -> None:
    """Same starting point for every measurement: no dirty pages being written back."""
    os.sync()
    time.sleep(1.0)


def bench_stream(base: Path, rounds: int = 5) -> None:
    print("== (1) stream throughput vs disk sequential write (1 GiB each, alternated, each after sync + 1 s;"
          " this VM's disk speed varies several-fold from one minute to the next)")
    driver = make_driver(base, 3600)
    try:
        target_dir = base / "site-b" / "p"
        volume = create(driver)
        fill(volume.provider_location or "", GiB, 1)
        driver.replicate_now([volume.id])
        print(f"   initial copy (fresh file): {GiB / driver.last_cycle['total_s'] / MiB:.0f} MiB/s")
        ratios, ratios_total = [], []
        for round_ in range(rounds):
            fill(volume.provider_location or "", GiB, 2 + round_)
            quiesce()
            disk = disk_write_speed(target_dir)
            quiesce()
            sent = driver.replicate_now([volume.id])[volume.id]["site-b"]
            cycle = driver.last_cycle
            to_commit = sent / cycle["to_commit_s"]
            total = sent / cycle["total_s"]
            ratios.append(to_commit / disk)
            ratios_total.append(total / disk)
            print(f"   round {round_ + 1}: disk {disk / MiB:.0f} MiB/s | {sent / MiB:.0f} MiB changed: complete copy"
                  f" (commit) after {cycle['to_commit_s']:.2f} s = {to_commit / MiB:.0f} MiB/s"
                  f" ({to_commit / disk:.0%});"
                  f" cycle incl. apply/cleanup {cycle['total_s']:.2f} s = {total / MiB:.0f} MiB/s ({total / disk:.0%})")
        print(f"   => stream/disk ratio, median of {rounds}: {statistics.median(ratios):.0%} (to commit), "
              f"{statistics.median(ratios_total):.0%} (whole cycle); target >= 80%")
        driver.delete_volume(volume)
    finally:
        driver.stop()


def bench_lag(base: Path, volumes: int = 20, rate: float = 20e6, interval: int = 5, duration: float = 60) -> None:
    print(f"== (2) lag under {rate / 1e6:.0f} MB/s over {volumes} volumes, interval {interval} s, {duration:.0f} s")
    driver = make_driver(base, interval)
    try:
        refs = [create(driver, **{"replication:interval": str(interval)}) for _ in range(volumes)]
        stop = threading.Event()
        written = [0]
        block = random.Random(7).randbytes(MiB)
        hot = 64 * MiB  # each volume's working set

        def writer() -> None:
            rnd = random.Random(3)
            fds = [os.open(r.provider_location or "", os.O_RDWR) for r in refs]
            started = time.monotonic()
            try:
                while not stop.is_set():
                    due = started + written[0] / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    fd = rnd.choice(fds)
                    offset = rnd.randrange(hot // (64 * 1024)) * 64 * 1024
                    fcntl.flock(fd, fcntl.LOCK_SH)  # a local consumer that honours the write barrier
                    try:
                        os.pwrite(fd, block[: 256 * 1024], offset)
                    finally:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    written[0] += 256 * 1024
            finally:
                for fd in fds:
                    os.close(fd)

        thread = threading.Thread(target=writer, daemon=True)
        started = time.monotonic()
        thread.start()
        lags, pendings = [], []
        sent_before = driver.bytes_sent_total
        while time.monotonic() - started < duration:
            time.sleep(0.5)
            caps = driver.get_stats().capabilities
            lags.append(caps["replication_lag_max_seconds"])
            pendings.append(caps["replication_bytes_pending"])
        stop.set()
        thread.join()
        elapsed = time.monotonic() - started
        warm = lags[int(len(lags) * 0.1):]
        replicated = (driver.bytes_sent_total - sent_before) / 1e6 / elapsed
        print(f"   written {written[0] / 1e6 / elapsed:.1f} MB/s; replicated {replicated:.1f} MB/s to site-b")
        print(f"   lag max {max(lags):.2f} s (after warm-up {max(warm):.2f} s), median {statistics.median(lags):.2f} s;"
              f" bytes pending max {max(pendings) / MiB:.1f} MiB  (target < {2 * interval} s)")
    finally:
        driver.stop()


def bench_failover(base: Path, count: int = 500) -> None:
    print(f"== (3) failover_host of {count} replicated 1 GiB sparse volumes (4 KiB of data each)")
    driver = make_driver(base, 3600)
    try:
        started = time.monotonic()
        refs = [create(driver) for _ in range(count)]
        print(f"   created (with initial copies) in {time.monotonic() - started:.1f} s")
        for i, ref in enumerate(refs):
            with open(ref.provider_location or "", "r+b") as f:
                f.write(i.to_bytes(4, "big") * 1024)
        started = time.monotonic()
        result = driver.failover_host(refs, "site-b")
        took = time.monotonic() - started
        print(f"   failover, primary readable (final sync): {took:.2f} s, ok {sum(r.ok for r in result.volumes)}"
              f"/{count}; {result.message}")
        started = time.monotonic()
        result = driver.failover_host(refs, "default")
        print(f"   failback to the primary (delta):          {time.monotonic() - started:.2f} s, "
              f"ok {sum(r.ok for r in result.volumes)}/{count}")
        driver.replicate_now()
        (base / "pool").rename(base / "pool.lost")
        started = time.monotonic()
        result = driver.failover_host(refs, "site-b")
        ages = [r.data_age_seconds or 0.0 for r in result.volumes]
        print(f"   failover, primary lost (promote):         {time.monotonic() - started:.2f} s, "
              f"ok {sum(r.ok for r in result.volumes)}/{count}, data age max {max(ages):.1f} s")
    finally:
        driver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--xfs", action="store_true", help="run on an XFS (reflink) loop mount instead")
    parser.add_argument("--only", default="1,2,3")
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")

    def each(root: Path) -> None:
        for part, fn in (("1", bench_stream), ("2", lambda b: bench_lag(b, duration=args.duration)),
                         ("3", bench_failover)):
            if part in parts:
                base = root / f"repl-bench-{uuid.uuid4().hex[:6]}"
                try:
                    fn(base)
                finally:
                    shutil.rmtree(base, ignore_errors=True)

    if args.xfs:
        with xfs_loop(8) as mnt:
            print(f"filesystem: XFS reflink loop mount at {mnt}")
            each(mnt)
    else:
        fstype = run("stat", "-f", "-c", "%T", args.dir).strip()
        print(f"filesystem: {args.dir} ({fstype})")
        each(Path(args.dir))


if __name__ == "__main__":
    main()
