"""One scheduling decision (every filter and weigher, for one volume) against 100 … 10,000 pools.

Pure and in-process: FilterScheduler.choose over PoolState objects built the way capability reports
build them, with the default configuration (AvailabilityZoneFilter, CapacityFilter,
CapabilitiesFilter; CapacityWeigher) plus the mandatory filters. Each measured decision also
consumes the chosen pool, as the scheduler does, so consecutive decisions differ.

Requests:
  typed    a volume type steering by backend name (<or> of 3 of 10 names), a capability (`tier`),
           a numeric capability (`iops >= 1000`) and thin provisioning, in one zone of two
  untyped  no extra specs: every pool passes the filters and is weighed (the worst case)

    python bench/scheduler.py [--decisions 2000] [--check]

`--check` exits 1 when the CPU-time p99 exceeds the budget (2 ms at 1,000 pools, 20 ms at 10,000).
Both clocks are printed: on an idle machine they agree; on a busy one the wall clock's tail is the
time other processes held the CPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cinderblock.model.records import RequestSpec  # noqa: E402
from cinderblock.scheduler.backend_state import BackendStateStore, PoolState  # noqa: E402
from cinderblock.scheduler.filter_scheduler import FilterScheduler  # noqa: E402

SIZES = (100, 300, 1000, 3000, 10000)
BUDGET_MS = {1000: 2.0, 10000: 20.0}
POOLS_PER_BACKEND = 4


def build_pools(count: int, seed: int = 7) -> list[PoolState]:
    """`count` pools in count/4 backends, with the capability mix a real cloud reports."""
    rng = random.Random(seed)
    store = BackendStateStore(max_age=3600)
    for backend in range(count // POOLS_PER_BACKEND):
        name = f"be{backend % 10}"
        thin = rng.random() < 0.8
        common = {"volume_backend_name": name, "vendor_name": "cinderblock", "driver_version": "1.0.0",
                  "storage_protocol": rng.choice(["iSCSI", "local"]), "availability_zone": rng.choice(["nova", "az2"]),
                  "multiattach": rng.random() < 0.5, "QoS_support": False,
                  "tier": rng.choice(["gold", "silver", "bronze"])}
        pools = []
        for index in range(POOLS_PER_BACKEND):
            total = rng.choice([1000, 2000, 5000, 10000])
            pools.append({
                "pool_name": f"pool{index}", "total_capacity_gb": total,
                "free_capacity_gb": round(total * rng.uniform(0.05, 0.95), 2),
                "provisioned_capacity_gb": round(total * rng.uniform(0, 3), 2),
                "allocated_capacity_gb": round(total * rng.uniform(0, 2), 2),
                "reserved_percentage": rng.choice([0, 5, 10]),
                "max_over_subscription_ratio": rng.choice([20.0, 1.5, "auto"]),
                "thin_provisioning_support": thin, "thick_provisioning_support": not thin or rng.random() < 0.3,
                "iops": rng.choice([100, 500, 1000, 5000, 20000]), "total_volumes": rng.randint(0, 500),
            })
        store.update(f"node{backend // 10}@{name}-{backend}", {**common, "pools": pools})
    return store.fresh_pools()


REQUESTS = {
    "typed": dict(availability_zone="nova", extra_specs={
        "volume_backend_name": "<or> be1 <or> be4 <or> be7", "capabilities:tier": "<or> gold <or> silver",
        "iops": ">= 1000", "provisioning:type": "thin", "qos:maxIOPS": "5000"}),
    "untyped": dict(availability_zone=None, extra_specs={}),
}


def measure(pools: list[PoolState], request: dict, decisions: int) -> tuple[list[float], list[float], int]:
    """(wall seconds, CPU seconds of this thread, decisions that placed) per decision. On a shared
    machine the wall clock also counts time the OS gave to other processes; the thread's CPU time
    is the decision's own cost."""
    scheduler = FilterScheduler()
    spec = RequestSpec(volume_id="bench", size_gb=10, project_id="bench", **request)
    for _ in range(50):  # warm up (compiled requirements, caches)
        scheduler.choose(pools, spec)
    wall, cpu, placed = [], [], 0
    clock, cpu_clock = time.perf_counter, time.thread_time
    for _ in range(decisions):
        start, cpu_start = clock(), cpu_clock()
        decision = scheduler.choose(pools, spec)
        if decision.pool is not None:
            decision.pool.consume(spec.size_gb)
        cpu.append(cpu_clock() - cpu_start)
        wall.append(clock() - start)
        placed += decision.pool is not None
    return wall, cpu, placed


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=2000, help="decisions measured per pool count")
    parser.add_argument("--check", action="store_true", help="exit 1 when a p99 exceeds its budget")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.decisions} decisions per row (10,000 pools: a quarter of them)")
    print(f"{'':15} {'':>6} | {'wall clock (ms)':^27} | {'thread CPU time (ms)':^27} |")
    print(f"{'request':8} {'pools':>6} {'kept':>6} | {'p50':>8} {'p99':>8} {'max':>8} | {'p50':>8} {'p99':>8} "
          f"{'max':>8} | {'ns/pool':>7}")
    failures = []
    for name, request in REQUESTS.items():
        for size in SIZES:
            pools = build_pools(size)
            spec = RequestSpec(volume_id="bench", size_gb=10, project_id="bench", **request)
            kept = FilterScheduler().filter(pools, spec)
            kept_count = len(kept) if isinstance(kept, list) else 0
            decisions = args.decisions if size < 10000 else max(200, args.decisions // 4)
            wall, cpu, placed = measure(pools, request, decisions)
            wall_ms, cpu_ms = [s * 1000 for s in wall], [s * 1000 for s in cpu]
            p99 = percentile(cpu_ms, 99)
            print(f"{name:8} {size:>6} {kept_count:>6} | "
                  f"{percentile(wall_ms, 50):>8.3f} {percentile(wall_ms, 99):>8.3f} {max(wall_ms):>8.3f} | "
                  f"{percentile(cpu_ms, 50):>8.3f} {p99:>8.3f} {max(cpu_ms):>8.3f} | "
                  f"{statistics.median(cpu_ms) * 1e6 / size:>7.0f}")
            assert placed == decisions, "every decision must place the volume"
            budget = BUDGET_MS.get(size)
            if budget is not None and p99 > budget:
                failures.append(f"{name} at {size} pools: CPU p99 {p99:.3f} ms > {budget} ms")
    for failure in failures:
        print(f"OVER BUDGET: {failure}")
    return 1 if failures and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
