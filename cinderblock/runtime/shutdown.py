"""Stopping on SIGTERM or SIGINT: say so, take no new work, finish what runs, and be gone within
graceful_shutdown_timeout (Cinder's option) whatever happens.

What a stopping service does not finish is not lost: messages it never read stay with the broker for
the next consumer, and what it was working on when the time ran out is settled by the recovery of
its next start (volume/recovery.py), as after a crash.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

LOG = logging.getLogger(__name__)
EXIT_UNFINISHED = 1  # the exit status when the timeout cut work short


def _nothing() -> list[str]:
    return []


class Shutdown:
    """One per process: `wait()` blocks until a stop signal, `begin()` starts the clock."""

    def __init__(self, name: str, timeout: float, in_progress: Callable[[], list[str]] = _nothing) -> None:
        self.name, self.timeout, self.in_progress = name, timeout, in_progress
        self._signalled = threading.Event()
        self._signal = "a stop signal"  # the HTTP server takes the signal itself
        self._began: float | None = None
        self._done = threading.Event()

    def install(self) -> None:
        """Stop signals end wait() (from the main thread only, as Python's signal module requires)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, number: int, _frame: object) -> None:
        self._signal = signal.Signals(number).name
        self._signalled.set()

    def wait(self) -> None:
        self.install()
        self._signalled.wait()

    def begin(self, budget: float | None = None) -> None:
        """Log the stop and start the clock: past `budget` seconds (graceful_shutdown_timeout when
        None; 0 is no limit) the process exits with what it was still doing logged."""
        budget = self.timeout if budget is None else budget
        self._began = time.monotonic()
        busy = self.in_progress()
        LOG.info("%s: stopping on %s: no new work is taken; %s in progress %s", self.name, self._signal,
                 f"{len(busy)} operation(s)" if busy else "nothing",
                 f"get {budget:.0f} s to finish" if self.timeout else "may finish however long it takes")
        if self.timeout:
            threading.Thread(target=self._expire, args=(budget,), name="shutdown-timer", daemon=True).start()

    def _expire(self, budget: float) -> None:
        if self._done.wait(max(0.0, budget)):
            return
        busy = self.in_progress()
        LOG.error("%s: still working after graceful_shutdown_timeout (%s s) on %s; exiting now: its next start "
                  "settles what was left", self.name, self.timeout, ", ".join(busy) or "its last requests")
        logging.shutdown()
        os._exit(EXIT_UNFINISHED)

    def finished(self) -> None:
        self._done.set()
        took = time.monotonic() - self._began if self._began is not None else 0.0
        LOG.info("%s: stopped in %.1f s", self.name, took)
