"""bounded(): a librbd maintenance call that never returns fails the driver call in bounded time.

Plain callables stand in for librbd (the module needs no Ceph): one that blocks forever (a request
whose completion notice the lock owner never sends), one whose effect shows although it never
returns, one that fails, one that finishes.
"""
from __future__ import annotations

import threading
import time

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.drivers.rbd.bounded import MaintenanceTimeout, bounded


POLL = 0.05


def test_a_call_that_never_returns_fails_at_the_deadline() -> None:
    never = threading.Event()
    started = time.monotonic()
    with pytest.raises(MaintenanceTimeout, match="metadata_set of rbd/volume-x: not done within 0.3 s") as info:
        bounded("metadata_set of rbd/volume-x", never.wait, 0.3, poll=POLL)
    assert isinstance(info.value, DriverError)
    assert time.monotonic() - started < 2
    never.set()


def test_an_effect_that_shows_ends_the_wait() -> None:
    never = threading.Event()
    looks = [0]

    def done() -> bool:
        looks[0] += 1
        if looks[0] == 1:
            raise RuntimeError("a failed look says nothing")
        return looks[0] >= 3

    started = time.monotonic()
    bounded("snapshot s of rbd/volume-x", never.wait, 30, done=done, poll=POLL)
    assert time.monotonic() - started < 5 and looks[0] == 3
    never.set()


def test_the_calls_error_and_result_reach_the_caller() -> None:
    def fails() -> None:
        raise DriverError("refused")

    with pytest.raises(DriverError, match="refused"):
        bounded("x", fails, 5, poll=POLL)
    ran: list[str] = []
    bounded("x", lambda: ran.append("ran"), 5, done=lambda: False, poll=POLL)
    assert ran == ["ran"]
