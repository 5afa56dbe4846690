"""RADOS connections: one long-lived connection per cluster, opened on first use, shared by every thread."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.drivers.rbd import ceph

LOG = logging.getLogger(__name__)


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
        self._rados: ceph.RadosClient | None = None
        self._ioctx: dict[str, ceph.IoCtx] = {}
        self._fsid: str | None = None

    def _connect(self) -> ceph.RadosClient:
        rados = ceph.rados()
        if self.config.user:
            client = rados.Rados(clustername=self.config.cluster_name, conffile=self.config.conf or "",
                                 rados_id=self.config.user)
        else:
            client = rados.Rados(clustername=self.config.cluster_name, conffile=self.config.conf or "")
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
    def rados(self) -> ceph.RadosClient:
        with self._lock:
            if self._rados is None:
                self._rados = self._connect()
            return self._rados

    def ioctx(self, pool: str | None = None) -> ceph.IoCtx:
        pool = pool or self.config.pool
        client = self.rados
        with self._lock:
            ctx = self._ioctx.get(pool)
            if ctx is None:
                rados = ceph.rados()
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
    """Long-lived clients, one per cluster (keyed by backend id), made with one timeout."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._clients: dict[str, ClusterClient] = {}

    def get(self, config: ClusterConfig) -> ClusterClient:
        with self._lock:
            client = self._clients.get(config.backend_id)
            if client is None or client.config != config:
                client = self._clients[config.backend_id] = ClusterClient(config, timeout=self.timeout)
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
