"""cinderblock.coordination: process-local locks, and tooz locks through the machine's Redis that
hold across "hosts" (two coordinators standing for two volume services)."""
from __future__ import annotations

import threading
import time

from cinderblock.coordination import LocalLocks, ToozLocks, make_locks

REDIS = "redis://127.0.0.1:6379"


def overlapping(locks: list[LocalLocks], name: str = "volume-x", hold: float = 0.05) -> bool:
    """Run one holder per lock factory (two threads each); True if two ever held the lock at once."""
    inside, overlap = [0], [False]
    guard = threading.Lock()

    def hold_it(factory: LocalLocks) -> None:
        with factory.lock(name):
            with guard:
                inside[0] += 1
                overlap[0] |= inside[0] > 1
            time.sleep(hold)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=hold_it, args=(factory,)) for factory in locks for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return overlap[0]


def test_local_locks_exclude_and_forget_released_names() -> None:
    locks = make_locks(None, "node1")
    assert type(locks) is LocalLocks
    assert not overlapping([locks])
    assert locks._locks == {}  # nothing kept for names nobody holds
    with locks.lock("volume-a"), locks.lock("volume-b"):  # different names do not block each other
        pass


def test_tooz_locks_exclude_across_coordinators() -> None:
    node1, node2 = make_locks(REDIS, "node1"), make_locks(REDIS, "node2")
    assert isinstance(node1, ToozLocks)
    node1.start()
    node2.start()
    try:
        assert not overlapping([node1, node2], name=f"volume-{time.monotonic_ns()}")
    finally:
        node1.stop()
        node2.stop()
