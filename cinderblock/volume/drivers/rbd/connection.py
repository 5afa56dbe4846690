"""RADOS connections: one shared connection per cluster, opened on first use and reused by every thread.

The `rados`/`rbd` modules are Debian's (python3-rados, python3-rbd); they are imported lazily so the
rest of cinderblock imports without them. librados and librbd calls release the GIL, so callers run
them directly on their own (worker) thread.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cinderblock.model.errors import DriverError

LOG = logging.getLogger(__name__)


def bindings() -> tuple[Any, Any]:
    """(rados, rbd) modules, or DriverError saying how to get them."""
    try:
        import rados  # type: ignore[import-not-found]
        import rbd  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DriverError("the RBD driver needs Ceph's python bindings (Debian: python3-rados python3-rbd; "
                          "scripts/install --test links them into the venv): " + str(exc)) from exc
    return rados, rbd


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach one cluster: the primary (backend_id 'default') or a replication target."""

    backend_id: str
    cluster_name: str
    conf: str
    user: str | None
    secret_uuid: str | None
    pool: str


class UnreachableCluster(DriverError):
    """The cluster's monitors did not answer within the timeout."""


class ClusterClient:
    """One librados connection to one cluster, plus an I/O context per pool."""

    def __init__(self, config: ClusterConfig, timeout: float | None = None) -> None:
        self.config = config
        self.timeout = timeout if timeout is not None and timeout >= 0 else None
        self._lock = threading.Lock()
        self._rados: Any = None
        self._ioctx: dict[str, Any] = {}
        self._fsid: str | None = None

    def _connect(self) -> Any:
        rados, _ = bindings()
        kwargs: dict[str, Any] = {"clustername": self.config.cluster_name, "conffile": self.config.conf or ""}
        if self.config.user:
            kwargs["rados_id"] = self.config.user
        client = rados.Rados(**kwargs)
        try:
            if self.timeout is not None:
                for key in ("rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"):
                    client.conf_set(key, str(int(max(1, self.timeout))))
                client.connect(timeout=int(max(1, self.timeout)))
            else:
                client.connect()
        except (rados.Error, OSError) as exc:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise UnreachableCluster(f"cannot connect to Ceph cluster {self.config.cluster_name!r} "
                                     f"({self.config.conf}): {exc}") from exc
        return client

    @property
    def rados(self) -> Any:
        with self._lock:
            if self._rados is None:
                self._rados = self._connect()
            return self._rados

    def ioctx(self, pool: str | None = None) -> Any:
        pool = pool or self.config.pool
        client = self.rados
        with self._lock:
            ctx = self._ioctx.get(pool)
            if ctx is None:
                rados, _ = bindings()
                try:
                    ctx = client.open_ioctx(pool)
                except rados.ObjectNotFound as exc:
                    raise DriverError(f"pool {pool!r} does not exist on cluster {self.config.cluster_name!r}") from exc
                self._ioctx[pool] = ctx
            return ctx

    def reset(self) -> None:
        """Drop the connection (after an error that may have broken it); the next use reconnects."""
        with self._lock:
            old, self._rados = self._rados, None
            contexts, self._ioctx = list(self._ioctx.values()), {}
        for ctx in contexts:
            with contextlib.suppress(Exception):
                ctx.close()
        if old is not None:
            with contextlib.suppress(Exception):
                old.shutdown()

    close = reset

    def mon_command(self, command: dict[str, Any], mgr: bool = False) -> Any:
        """Run a monitor (or manager) command; return its decoded JSON output (None when empty)."""
        command = {"format": "json", **command}
        call = self.rados.mgr_command if mgr else self.rados.mon_command
        ret, out, err = call(json.dumps(command), b"", timeout=int(self.timeout or 30))
        if ret != 0:
            raise DriverError(f"ceph {command['prefix']!r} on {self.config.cluster_name!r} failed: "
                              f"{err or errno.errorcode.get(-ret, ret)}")
        return json.loads(out) if out.strip() else None

    @property
    def fsid(self) -> str:
        if self._fsid is None:
            self._fsid = str(self.rados.get_fsid())
        return self._fsid

    def monitors(self) -> tuple[list[str], list[str]]:
        """(hosts, ports) of the monitors, as Cinder's connection info lists them."""
        dump = self.mon_command({"prefix": "mon dump"})
        hosts: list[str] = []
        ports: list[str] = []
        for mon in dump.get("mons", []):
            addr = None
            for entry in (mon.get("public_addrs") or {}).get("addrvec", []):
                if entry.get("type") == "v1" or addr is None:
                    addr = entry.get("addr")
            addr = addr or str(mon.get("addr", "")).split("/")[0]
            if not addr:
                continue
            host, _, port = addr.rpartition(":")
            hosts.append(host.strip("[]"))
            ports.append(port)
        return hosts, ports


class ClientPool:
    """The long-lived clients of a driver, one per cluster (keyed by backend id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, ClusterClient] = {}

    def get(self, config: ClusterConfig) -> ClusterClient:
        with self._lock:
            client = self._clients.get(config.backend_id)
            if client is None or client.config != config:
                client = self._clients[config.backend_id] = ClusterClient(config)
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@contextlib.contextmanager
def ceph_errors(action: str) -> Iterator[None]:
    """librados/librbd errors → DriverError naming what we were doing."""
    try:
        yield
    except DriverError:
        raise
    except Exception as exc:
        rados, rbd = bindings()
        if isinstance(exc, (rados.Error, rbd.Error, OSError)):
            raise DriverError(f"{action}: {type(exc).__name__}: {exc}") from exc
        raise
