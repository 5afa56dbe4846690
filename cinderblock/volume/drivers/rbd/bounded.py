"""librbd maintenance calls with a deadline.

Snapshot create and remove, protect, resize, rollback, feature changes and group snapshots need the
image's exclusive lock. When another client holds it (the qemu of a guest writing to the volume),
librbd asks that owner to run the operation and waits for its completion notice, with no deadline
of its own. The notice can be lost: a requester that has just seen the lock change hands (the owner
taking it back after a group snapshot) cancels its request while the owner runs it, then re-sends
it under the same id; the owner answers "already done" but sends no new notice, and librbd re-sends
every 30 s (rbd_request_timed_out_seconds) for good. Seen with Ceph 16.2.15 as metadata_set hanging
right after a group snapshot; upstream: ceph/ceph PR 49835, tracker 59563.

So each such call runs on a thread of its own (which opens and closes its own image handle) and the
caller waits at most `timeout` seconds, then gets a DriverError. A `done` probe (a fresh read-only
look at the image) recognises an operation the owner carried out whose notice was lost, so that case
succeeds as soon as its effect shows. A thread left behind ends by itself once the lock changes hands
again (the guest closes the image, or the next group snapshot takes the lock).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cinderblock.model.errors import DriverError

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
POLL = 2.0  # seconds between looks with the done probe


class MaintenanceTimeout(DriverError):
    """A librbd maintenance call did not finish within its deadline."""


def bounded(action: str, call: Callable[[], object], timeout: float,
            done: Callable[[], bool] | None = None, poll: float = POLL) -> None:
    """Run call, waiting at most timeout seconds (looking with done every poll seconds); its
    exception is re-raised here."""
    failure: list[BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting caller
            failure.append(exc)
        finally:
            finished.set()

    threading.Thread(target=run, name=f"rbd {action}"[:60], daemon=True).start()
    deadline = time.monotonic() + timeout
    while not finished.wait(max(0.0, min(poll, deadline - time.monotonic()))):
        if done is not None and _looks_done(action, done):
            LOG.warning("%s: done, but librbd did not hear back from the image's lock owner (its request "
                        "stays behind until the lock changes hands)", action)
            return
        if time.monotonic() >= deadline:
            raise MaintenanceTimeout(
                f"{action}: not done within {timeout:g} s; the client holding the image's exclusive lock "
                "(e.g. a guest writing to it) did not complete the request (rbd_maintenance_timeout)")
    if failure:
        raise failure[0]


def _looks_done(action: str, done: Callable[[], bool]) -> bool:
    try:
        return done()
    except Exception:  # a probe that fails says nothing; the deadline still holds
        LOG.debug("%s: probe failed", action, exc_info=True)
        return False
