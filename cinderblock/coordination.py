"""Locks on one volume or snapshot, across hosts when `[coordination] backend_url` is set.

Two volume services may act on the same storage (active-active: two hosts, one backend). Workflows
then take `locks.lock("volume-<id>")` around their driver calls so that, say, a clone never copies a
volume while another host deletes it. With a tooz URL (redis://host:6379, mysql://..., file:///dir)
the lock holds across hosts; unset, a process-local lock does (one service per backend).

The local lock is always taken first: threads of one process queue on it in memory and only one of
them polls the tooz backend at a time.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

LOG = logging.getLogger(__name__)
PREFIX = "cinderblock-"


class LocalLocks:
    """Named locks within this process; a name's lock lives while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(name, (threading.Lock(), 0))
            self._locks[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


class ToozLocks(LocalLocks):
    """Local lock, then a tooz lock of the same name (held across hosts)."""

    def __init__(self, url: str, member: str) -> None:
        super().__init__()
        from tooz import coordination  # imported only when configured

        self._coordinator: Any = coordination.get_coordinator(url, member.encode())
        self.url = url

    def start(self) -> None:
        # start_heart: a thread keeps the member alive and refreshes the expiry of held locks.
        self._coordinator.start(start_heart=True)
        LOG.info("coordination through %s", self.url.split("://", 1)[0])

    def stop(self) -> None:
        try:
            self._coordinator.stop()
        except Exception:  # the backend may be gone already; nothing is held at stop
            LOG.warning("stopping the coordinator failed", exc_info=True)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with super().lock(name), self._coordinator.get_lock((PREFIX + name).encode()):
            yield


def make_locks(url: str | None, host: str) -> LocalLocks:
    """tooz locks when url is set, else process-local ones; the member id names host and process."""
    if not url:
        return LocalLocks()
    member = f"{host}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return ToozLocks(url, member)
