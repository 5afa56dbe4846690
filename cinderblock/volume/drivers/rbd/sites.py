"""The clusters of one backend: the primary, its replication targets and which of them serves now."""
from __future__ import annotations

from collections.abc import Sequence

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import PRIMARY_BACKEND_ID, ReplicationDevice
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.connection import ClientPool, ClusterClient, ClusterConfig


class Sites:
    """Cluster configurations by backend id and one long-lived client per cluster.

    The targets are known once `configure` has validated the `replication_device` entries (at
    do_setup); the active site is set before that (from the service row) and by failover/failback.
    """

    def __init__(self, primary: ClusterConfig) -> None:
        self.primary = primary
        self.pool_name = primary.pool
        self.targets: tuple[ReplicationDevice, ...] = ()
        self._configs: dict[str, ClusterConfig] = {}
        self._active: str | None = None
        self.clients = ClientPool()

    def configure(self, targets: Sequence[ReplicationDevice]) -> None:
        """Take the replication targets; the active site must be one of them (or the primary)."""
        configs = {}
        for device in targets:
            opts = device.options
            configs[device.backend_id] = ClusterConfig(
                backend_id=device.backend_id,
                cluster_name=opts.get("cluster_name") or device.backend_id,
                conf=opts.get("conf") or f"/etc/ceph/{device.backend_id}.conf",
                user=opts.get("user") or self.primary.user,
                secret_uuid=opts.get("secret_uuid") or self.primary.secret_uuid,
                pool=self.pool_name,
            )
        if self._active is not None and self._active not in configs:
            raise DriverError(f"the active backend {self._active!r} is not a replication_device "
                              f"(targets: {sorted(configs)})")
        self.targets = tuple(targets)
        self._configs = configs

    @property
    def active_backend_id(self) -> str | None:
        """The target serving the volumes now; None: the primary."""
        return self._active

    def set_active(self, backend_id: str | None) -> None:
        self._active = None if backend_id in (None, "", PRIMARY_BACKEND_ID) else backend_id

    def config_for(self, backend_id: str | None) -> ClusterConfig:
        if backend_id is None or backend_id == PRIMARY_BACKEND_ID:
            return self.primary
        config = self._configs.get(backend_id)
        if config is None:
            raise InvalidReplicationTarget(f"{backend_id!r} is not a replication target of this backend "
                                           f"({sorted(self._configs)})")
        return config

    @property
    def active_config(self) -> ClusterConfig:
        return self.config_for(self._active)

    def client(self, config: ClusterConfig | None = None) -> ClusterClient:
        """The long-lived client of config's cluster (the active one by default)."""
        return self.clients.get(config or self.active_config)

    def ioctx(self, config: ClusterConfig | None = None) -> ceph.IoCtx:
        """The volumes' pool on config's cluster (the active one by default)."""
        return self.client(config).ioctx()

    def close(self) -> None:
        self.clients.close()
