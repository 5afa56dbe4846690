"""Start a cinderblock service in a subprocess for benchmarks, and small statistics helpers."""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

HEADERS = {"X-Auth-Token": "admin:admin", "OpenStack-API-Version": "volume 3.71"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(config: str = "", state_dir: str | None = None) -> Iterator[str]:
    """Yields the base URL of a `cinderblock serve` started with `config` (cinder.conf text)."""
    with tempfile.TemporaryDirectory() as tmp:
        state = state_dir or os.path.join(tmp, "state")
        conf = os.path.join(tmp, "bench.conf")
        with open(conf, "w") as handle:
            handle.write(config)
        port = free_port()
        log = open(os.path.join(tmp, "service.log"), "w")
        process = subprocess.Popen([sys.executable, "-m", "cinderblock", "--config-file", conf, "--state-path",
                                    state, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + "/", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(open(os.path.join(tmp, "service.log")).read()) from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def describe(name: str, seconds: list[float], wall: float) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name}: n={len(ms)} p50={percentile(ms, 50):.1f} ms p99={percentile(ms, 99):.1f} ms "
            f"mean={statistics.mean(ms):.1f} ms; {len(ms) / wall:.0f} per second over {wall:.2f} s")
