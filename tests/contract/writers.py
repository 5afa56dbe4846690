"""A writer that numbers its writes, to check that copies of several volumes hold one instant.

It writes n to every member in order, then n + 1, ... A point-in-time copy of the set taken while it
runs holds a prefix of that sequence: the members read n for the first k of them and n - 1 for the
rest. Anything else (a later member ahead of an earlier one, or two numbers apart) was not one instant.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

SEQ_BYTES = 8


def encode(n: int) -> bytes:
    return n.to_bytes(SEQ_BYTES, "little")


def decode(data: bytes) -> int:
    return int.from_bytes(data[:SEQ_BYTES], "little")


def one_instant(values: Sequence[int]) -> bool:
    """The members' numbers, in write order, are a prefix of the writer's sequence."""
    return (all(a >= b for a, b in itertools.pairwise(values)) and values[0] - values[-1] <= 1
            and values[-1] >= 0)


class SequenceWriter:
    """Writes n to member 0, 1, ... in turn, n = 1, 2, ..., in a thread, until stopped."""

    def __init__(self, count: int, write: Callable[[int, int], None]) -> None:
        self._count = count
        self._write = write
        self.done = 0  # the last n written to every member
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sequence-writer", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                for index in range(self._count):
                    self._write(index, n)
                self.done = n
        except BaseException as error:  # noqa: BLE001 -- the test reports it
            self.errors.append(error)

    def wait_past(self, n: int, timeout: float = 60.0) -> None:
        """Until the writer has completed more than n rounds (it goes on after a copy was taken)."""
        deadline = time.monotonic() + timeout
        while self.done <= n:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"the writer is stuck at {self.done}"
            time.sleep(0.005)
