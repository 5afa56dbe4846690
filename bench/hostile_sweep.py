"""Hostile-input sweep on SQLite, PostgreSQL and MariaDB: no request may be answered 5xx.

    python bench/hostile_sweep.py [--requests 20000] [--databases sqlite,postgresql,mariadb] [--seed 1]

For each database: a fresh database (PostgreSQL and MariaDB on 127.0.0.1, as tests/resilience/deploy.py
reaches them), an embedded cinderblock on it, two projects' volumes, snapshots, groups and types, then
the generated sweep of tests/api/sweep.py (schemathesis + hostile text, every operation, as admin, member
and reader of project A) with enough examples per operation for `--requests` requests, and the fixed
sweep (every hostile value in every body slot, filter and path parameter). Prints requests, 5xx and wall
time per database and role, and the first failures. Exit status 1 if any request was answered 5xx (or
leaked project B's data).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import schemathesis  # noqa: E402
from schemathesis.core.result import Ok  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from cinderblock.config.settings import build_config, load_settings  # noqa: E402
from cinderblock.volume.loading import driver_options  # noqa: E402
from cinderblock.runtime.embedded import start_embedded  # noqa: E402
from cinderblock.runtime.wiring import build_core  # noqa: E402
from tests.api.sweep import ROLES, Tally, fixed_sweep, sweep  # noqa: E402
from tests.api.test_policy_matrix import build_world  # noqa: E402
from tests.conftest import Cloud  # noqa: E402
from tests.resilience.deploy import fresh_database  # noqa: E402

# Quotas out of the way, so creations keep reaching the database instead of stopping at 413.
CONFIG = "[DEFAULT]\nquota_volumes = -1\nquota_snapshots = -1\nquota_gigabytes = -1\nquota_groups = -1\n"


@contextlib.contextmanager
def database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
    else:
        with fresh_database(kind) as url:
            yield url


def run(kind: str, target: int, seed: int, workdir: Path) -> Tally:
    tally = Tally(keep=20)
    with database(kind) as url:
        config = CONFIG + (f"[database]\nconnection = {url}\n" if url else "")
        (workdir / f"{kind}.conf").write_text(config)
        settings = load_settings(build_config(config_files=[str(workdir / f"{kind}.conf")]), driver_options,
                                 state_path=str(workdir / kind))
        running = start_embedded(build_core(settings))
        try:
            # raise_server_exceptions=False: a handler's exception is counted as the 500 a client gets.
            client = TestClient(running.app, base_url="http://cinderblock.test", raise_server_exceptions=False)
            cloud = Cloud(running, client)
            with client:
                world = build_world(cloud, groups=True)
                schema = schemathesis.openapi.from_asgi("/openapi.json", running.app)
                operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
                fixed_sweep(client, world, operations, tally)
                started = time.monotonic()

                def progress(index: int) -> None:
                    if index % 10 == 9:
                        print(f"  {kind}: {index + 1}/{len(operations)} operations, {tally.total} requests, "
                              f"{sum(tally.server_errors.values())} 5xx, {time.monotonic() - started:.0f} s",
                              flush=True)

                # Passes until the target is reached (some generated requests are never sent: URLs over
                # 64 KiB, which the HTTP client refuses).
                for attempt in range(10):
                    remaining = target - tally.total
                    if remaining <= 0:
                        break
                    examples = max(1, math.ceil(remaining / (len(operations) * len(ROLES))))
                    sweep(client, world, operations, examples, tally, seed=seed + 1000 * attempt, progress=progress)
        finally:
            running.stop()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="at least this many per database")
    parser.add_argument("--databases", default="sqlite,postgresql,mariadb")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # Handlers log each refused request; the sweep's own counts are the output.
    logging.basicConfig(level=logging.CRITICAL)
    results: dict[str, tuple[Tally, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.databases.split(","):
            print(f"{kind}: sweeping ({args.requests} requests at least)", flush=True)
            started = time.monotonic()
            tally = run(kind, args.requests, args.seed, Path(tmp))
            results[kind] = (tally, time.monotonic() - started)
    failed = False
    print(f"\n{'database':<11} {'role':<7} {'requests':>9} {'5xx':>5} {'wall s':>8}")
    for kind, (tally, wall) in results.items():
        for role in ROLES:
            print(f"{kind:<11} {role:<7} {tally.requests.get(role, 0):>9} {tally.server_errors.get(role, 0):>5} "
                  f"{tally.seconds.get(role, 0.0):>8.0f}")
        print(f"{kind:<11} {'all':<7} {tally.total:>9} {sum(tally.server_errors.values()):>5} {wall:>8.0f}"
              f"   (fixed sweep {tally.seconds.get('fixed', 0.0):.0f} s; {tally.unsent} URLs over 64 KiB not sent)")
        if tally.failures:
            failed = True
            print(f"  {tally.failure_count} failures, the first ones:")
            for failure in tally.failures:
                print("   ", failure[:400])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
