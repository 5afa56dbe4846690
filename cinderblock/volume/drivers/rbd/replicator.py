"""The replicator: per-image rbd-mirror mirroring of replicated volumes, and how far the copies lag.

Every image of a replicated type is mirrored (pool mirroring in `image` mode, peers set up outside,
e.g. by `scripts/ceph-clusters start --pair`). Journal mode: exclusive-lock + journaling, every write
replayed. Snapshot mode (`replication:mode=snapshot`): a mirror-snapshot schedule on the pool every
`replication_interval` (type override `replication:interval`), fast-diff deltas. rbd-mirror needs a
clone's parent mirrored too, so replicated clones are made to stand alone.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import PRIMARY_BACKEND_ID, ModelUpdate, ReplicaState, VolumeRef
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.connection import ClientPool, ClusterConfig
from cinderblock.volume.drivers.rbd.images import VOLUME_PREFIX, Images
from cinderblock.volume.drivers.rbd.mirror_status import replica_lag
from cinderblock.volume.drivers.rbd.sites import Sites

LOG = logging.getLogger(__name__)

MODES = ("journal", "snapshot")


@dataclass(frozen=True)
class ImageLayout:
    """What replication asks of a new image."""

    journaling: bool = False  # journal-mode mirroring needs the journaling feature from the start
    standalone: bool = False  # no parent: a mirrored clone is flattened


@dataclass(frozen=True)
class ReplicationSettings:
    mode: str = "journal"  # rbd_replication_mode: for types without replication:mode
    interval: int = 60  # replication_interval (seconds) of the snapshot-mode schedule
    status_timeout: float | None = 5.0  # replication_connect_timeout for reading the other sites


class Replicator:
    """Mirrors the images of replicated volumes to the sites' targets and reads their lag."""

    def __init__(self, sites: Sites, images: Images, settings: ReplicationSettings) -> None:
        self.sites = sites
        self.images = images
        self.settings = settings
        # Short-timeout clients: a site that is down must not hold up stats.
        self._status_clients = ClientPool(timeout=settings.status_timeout)

    def setup(self) -> None:
        """At do_setup, once the sites know their targets."""
        if self.settings.mode not in MODES:
            raise DriverError(f"rbd_replication_mode must be one of {MODES}, not {self.settings.mode!r}")
        if self.sites.targets:
            self.ensure_schedule(self.sites.active_config)

    def close(self) -> None:
        self._status_clients.close()

    def ensure_schedule(self, config: ClusterConfig, interval: int | None = None) -> None:
        """A pool-level mirror-snapshot schedule on config's cluster (snapshot-mode images use it)."""
        self._schedule(config, f"{self.sites.pool_name}/", interval or self.settings.interval)

    def _schedule(self, config: ClusterConfig, level_spec: str, interval: int) -> None:
        minutes = max(1, math.ceil(interval / 60))
        try:
            self.sites.client(config).mon_command({"prefix": "rbd mirror snapshot schedule add",
                                                   "level_spec": level_spec, "interval": f"{minutes}m"}, mgr=True)
        except Exception as exc:  # noqa: BLE001 -- no mgr: the driver still snapshots at failover
            LOG.warning("could not add a mirror-snapshot schedule %s on %s: %s", level_spec, config.cluster_name,
                        exc)

    # -- which volumes, how -----------------------------------------------------------------------

    def mode(self, volume: VolumeRef) -> str:
        mode = str(volume.extra_specs.get("replication:mode") or self.settings.mode or "journal")
        if mode not in MODES:
            raise DriverError(f"replication:mode must be one of {MODES}, not {mode!r}")
        return mode

    def replicates(self, volume: VolumeRef) -> bool:
        return bool(self.sites.targets) and volume.replicated

    def layout(self, volume: VolumeRef) -> ImageLayout:
        if not self.replicates(volume):
            return ImageLayout()
        return ImageLayout(journaling=self.mode(volume) == "journal", standalone=True)

    def capabilities(self) -> dict[str, Any]:
        """The stats keys of replication (Cinder's names), with the lag summary when it can be read."""
        targets = self.sites.targets
        if not targets:
            return {"replication_enabled": False}
        caps: dict[str, Any] = {
            "replication_enabled": True, "replication_type": "async",
            "replication_targets": [t.backend_id for t in targets] + [PRIMARY_BACKEND_ID],
            "replication_count": len(targets),
        }
        try:
            states = self.states()
        except Exception as exc:  # noqa: BLE001 -- a down peer must not stop stats
            LOG.warning("replication lag unavailable: %s", exc)
            return caps
        now = time.time()
        ages = [now - s.last_complete_at for per in states.values() for s in per if s.last_complete_at]
        caps["replication_lag_max_seconds"] = round(max(ages), 1) if ages else 0.0
        caps["replication_bytes_pending"] = sum(s.bytes_pending for per in states.values() for s in per)
        return caps

    # -- per image --------------------------------------------------------------------------------

    def setup_new_image(self, volume: VolumeRef) -> tuple[str | None, str | None]:
        """(replication_status, replication_driver_data) of a new volume's image, mirrored if replicated."""
        if not self.sites.targets:
            return None, None
        if not volume.replicated:
            return "disabled", None
        return self.enable(volume)

    def enable(self, volume: VolumeRef) -> tuple[str, str]:
        """Mirror the volume's image (also for a retype into a replicated type)."""
        rbd = ceph.rbd()
        mode = self.mode(volume)
        with self.images.open(volume.name) as handle:
            info = handle.mirror_image_get_info()
            if info.get("state") != rbd.RBD_MIRROR_IMAGE_ENABLED:
                if mode == "journal":
                    features = handle.features()
                    if not features & rbd.RBD_FEATURE_EXCLUSIVE_LOCK:
                        handle.update_features(rbd.RBD_FEATURE_EXCLUSIVE_LOCK, True)
                    if not features & rbd.RBD_FEATURE_JOURNALING:
                        handle.update_features(rbd.RBD_FEATURE_JOURNALING, True)
                    handle.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_JOURNAL)
                else:
                    handle.mirror_image_enable(rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT)
        interval = volume.extra_specs.get("replication:interval")
        if mode == "snapshot" and interval and str(interval).isdigit():
            self._schedule(self.sites.active_config, f"{self.sites.pool_name}/{volume.name}", int(interval))
        return "enabled", json.dumps({"mode": mode}, sort_keys=True, separators=(",", ":"))

    def disable(self, volume: VolumeRef) -> tuple[str, None]:
        """Stop mirroring the volume's image (retype out of a replicated type); the copies on the
        targets are removed by rbd-mirror."""
        rbd = ceph.rbd()
        with self.images.open(volume.name) as handle:
            if handle.mirror_image_get_info().get("state") == rbd.RBD_MIRROR_IMAGE_ENABLED:
                handle.mirror_image_disable(False)
            if handle.features() & rbd.RBD_FEATURE_JOURNALING:
                handle.update_features(rbd.RBD_FEATURE_JOURNALING, False)
        return "disabled", None

    def update(self, volume: VolumeRef) -> ModelUpdate:
        """What to persist after enabling replication on an existing volume (retype)."""
        status, data = self.enable(volume)
        return ModelUpdate(replication_status=status, replication_driver_data=data)

    def sync_now(self, volume: VolumeRef) -> None:
        """Take a mirror snapshot now (snapshot mode; journal mode replicates every write anyway)."""
        rbd = ceph.rbd()
        with self.images.open(volume.name) as handle:
            if handle.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT:
                handle.mirror_image_create_snapshot()

    # -- lag --------------------------------------------------------------------------------------

    def states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        """From rbd-mirror's status of the non-primary copies on every other site."""
        rbd = ceph.rbd()
        active = self.sites.active_backend_id
        sites = [t.backend_id for t in self.sites.targets if t.backend_id != active]
        sites += [PRIMARY_BACKEND_ID] if active else []
        now = time.time()
        states: dict[str, list[ReplicaState]] = {}
        for site in sites:
            client = self._status_clients.get(self.sites.config_for(site))
            try:
                statuses = list(rbd.RBD().mirror_image_status_list(client.ioctx()))
            except Exception as exc:  # noqa: BLE001 -- an unreachable site: unknown copies
                client.reset()
                LOG.warning("mirror status of %s unavailable: %s", site, exc)
                continue
            for status in statuses:
                name = str(status.get("name", ""))
                if not name.startswith(VOLUME_PREFIX) or "." in name:
                    continue
                if status.get("description") == "local image is primary":
                    continue
                last, pending, in_flight = replica_lag(status, now)
                states.setdefault(name[len(VOLUME_PREFIX):], []).append(
                    ReplicaState(target=site, last_complete_at=last, bytes_pending=pending, in_flight=in_flight))
        return {volume_id: tuple(per) for volume_id, per in states.items()}
