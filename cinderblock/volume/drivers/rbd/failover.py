"""Failover: the whole backend moves to a replication target, image by image, in parallel.

Failover demotes every image on the active cluster (under `replication_connect_timeout`) and promotes
it on the target. A clean demote gets a non-forced promote, which succeeds once the target has
replayed the demotion (so nothing written is lost). Only images whose demote failed are
force-promoted, and the result says whether the whole cluster was unreachable or which images failed.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import FailoverResult, ProgressCallback, VolumeFailover, VolumeRef, no_progress
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.connection import ClusterClient, ClusterConfig
from cinderblock.volume.drivers.rbd.mirror_status import image_mode, replica_lag
from cinderblock.volume.drivers.rbd.sites import Sites

LOG = logging.getLogger(__name__)

UNREACHABLE = "cluster unreachable"


@dataclass(frozen=True)
class FailoverSettings:
    workers: int = 32  # rbd_failover_workers: images switched at once
    promote_timeout: float = 60.0  # rbd_failover_promote_timeout
    connect_timeout: float | None = 5.0  # replication_connect_timeout, for the cluster being left
    failback_timeout: float = 600.0  # per image, until the primary's copy has caught up
    lock_grace: float = 5.0  # after a forced promote, before a stale lock is broken


def in_parallel(items: Sequence[VolumeRef], work: Callable[[VolumeRef], VolumeFailover], workers: int,
                progress: ProgressCallback) -> list[VolumeFailover]:
    """work(item) for every item on up to `workers` threads, results in the items' order."""
    results: list[VolumeFailover] = []
    if not items:
        return results
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="rbd-failover") as pool:
        for result in pool.map(work, items):
            results.append(result)
            progress(100 * len(results) // len(items))
    return results


class Failover:
    """Switches the backend's images from the active cluster to a target and records the new active site."""

    def __init__(self, sites: Sites, settings: FailoverSettings,
                 on_active: Callable[[ClusterConfig], None] = lambda config: None) -> None:
        self.sites = sites
        self.settings = settings
        self.on_active = on_active  # called with the target once it serves (the replicator's schedule)

    def run(self, volumes: Sequence[VolumeRef], target_id: str,
            progress: ProgressCallback = no_progress) -> FailoverResult:
        source = self.sites.active_config
        target = self.sites.config_for(target_id)
        # The target must answer before anything changes; the source may be gone. Asked through a new
        # connection bounded by replication_connect_timeout: the kept one has no limit on its requests,
        # and a target that stopped answering would hold the failover (and finish it much later).
        self._probe(target, target_id)
        target_client = self.sites.client(target)
        try:
            target_client.ioctx()
        except DriverError as exc:
            target_client.reset()
            raise DriverError(f"replication target {target_id!r} is unreachable: {exc}") from exc
        source_client = ClusterClient(source, timeout=self.settings.connect_timeout)
        reachable = True
        try:
            source_client.ioctx()
        except DriverError as exc:
            LOG.warning("failover: %s is unreachable (%s): forcing every promotion", source.cluster_name, exc)
            reachable = False
        demote_errors: dict[str, str] = {}

        def switch(volume: VolumeRef) -> VolumeFailover:
            if reachable and not self.target_ready(target_client, volume.name):
                # Demoting before the target's first sync completes would strand both copies.
                return VolumeFailover(volume.id, ok=False, error="the target's copy never finished its initial "
                                      f"sync within {self.settings.promote_timeout:.0f}s; the volume stays on the "
                                      "source")
            error = self._demote(source_client, volume.name) if reachable else UNREACHABLE
            if error:
                demote_errors[volume.id] = error
            return self._promote(target_client, volume, force=bool(error), demote_error=error)

        try:
            results = in_parallel(volumes, switch, self.settings.workers, progress)
        finally:
            source_client.close()
        self.on_active(target)
        self.sites.set_active(target_id)
        return FailoverResult(active_backend_id=target_id, volumes=tuple(results),
                              message=_message(source, target, reachable, demote_errors))

    def _probe(self, target: ClusterConfig, target_id: str) -> None:
        probe = ClusterClient(target, timeout=self.settings.connect_timeout)
        try:
            ceph.rbd().RBD().list(probe.ioctx())  # one read of the pool: monitors and OSDs answer
        except Exception as exc:  # noqa: BLE001 -- any failure means: not usable now
            self.sites.client(target).reset()
            raise DriverError(f"replication target {target_id!r} is unreachable: {exc}") from exc
        finally:
            probe.close()

    def target_ready(self, client: ClusterClient, name: str) -> bool:
        """The target's copy exists and replays (its initial sync is done), waiting up to the promote
        timeout; True as well when the target already holds the primary copy (a resumed failover)."""
        rbd = ceph.rbd()
        deadline = time.monotonic() + self.settings.promote_timeout
        while True:
            try:
                with rbd.Image(client.ioctx(), name, read_only=True) as handle:
                    if handle.mirror_image_get_info().get("primary"):
                        return True
                    if handle.mirror_image_get_status().get("state") == rbd.MIRROR_IMAGE_STATUS_STATE_REPLAYING:
                        return True
            except rbd.ImageNotFound:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    @staticmethod
    def _demote(client: ClusterClient, name: str) -> str | None:
        """Demote one image; None on success (or already not primary), else why it failed."""
        rbd = ceph.rbd()
        try:
            with rbd.Image(client.ioctx(), name) as handle:
                if not handle.mirror_image_get_info().get("primary"):
                    return None
                handle.mirror_image_demote()
            return None
        except rbd.ImageNotFound:
            return "image not found on the source cluster"
        except Exception as exc:  # noqa: BLE001 -- reported per volume
            return f"{type(exc).__name__}: {exc}"

    def _promote(self, client: ClusterClient, volume: VolumeRef, force: bool,
                 demote_error: str | None) -> VolumeFailover:
        """Promote the volume's image on client's cluster; non-forced promotes wait for the demotion to
        be replayed (then nothing is lost) and are forced only after rbd_failover_promote_timeout."""
        rbd = ceph.rbd()
        timeout = self.settings.promote_timeout
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            try:
                with rbd.Image(client.ioctx(), volume.name) as handle:
                    if handle.mirror_image_get_info().get("primary"):
                        return VolumeFailover(volume.id, ok=True, data_age_seconds=0.0 if not force else None)
                    age = _age(handle, time.time()) if force else 0.0
                    handle.mirror_image_promote(force)
                if force:
                    self._wait_writable(client, volume.name)
                note = f"forced promote ({demote_error})" if force else None
                return VolumeFailover(volume.id, ok=True, data_age_seconds=age, error=note)
            except rbd.ImageNotFound:
                last_error = "no copy of the image on the target cluster"
            except Exception as exc:  # noqa: BLE001
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                if not force:
                    LOG.warning("%s: the target did not replay the demotion in %.0fs (%s): forcing",
                                volume.name, timeout, last_error)
                    force, demote_error = True, f"demotion not replayed in time: {last_error}"
                    deadline = time.monotonic() + timeout
                    continue
                return VolumeFailover(volume.id, ok=False, error=f"promote failed: {last_error}")
            time.sleep(0.2 if not force else 1.0)

    def _wait_writable(self, client: ClusterClient, name: str) -> None:
        """After a forced promote the local rbd-mirror may still hold the image's lock while its replayer
        stops: wait (bounded) until a client can take the exclusive lock, i.e. the volume is usable."""
        rbd = ceph.rbd()
        deadline = time.monotonic() + self.settings.promote_timeout
        started = time.monotonic()
        while True:
            try:
                with rbd.Image(client.ioctx(), name) as handle:
                    if not handle.features() & rbd.RBD_FEATURE_EXCLUSIVE_LOCK:
                        return
                    handle.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
                    handle.lock_release()
                LOG.info("%s writable %.1fs after its forced promote", name, time.monotonic() - started)
                return
            except rbd.Error as exc:
                if time.monotonic() >= deadline:
                    LOG.warning("%s (%s) still not writable after its forced promote: %s", name,
                                image_mode(client, name), exc)
                    return
                if time.monotonic() - started > self.settings.lock_grace:
                    _break_stale_lock(client, name)
            time.sleep(0.3)


def _age(handle: ceph.Image, now: float) -> float | None:
    """How old the data of the target's copy is, from its mirror status (None: unknown)."""
    try:
        last, _, _ = replica_lag(handle.mirror_image_get_status(), now)
    except Exception:  # noqa: BLE001
        return None
    return None if last is None else max(0.0, now - last)


def _break_stale_lock(client: ClusterClient, name: str) -> None:
    """The local rbd-mirror's journal replayer can hang on the dead peer while holding the image's
    lock. Break it (librbd blocklists the holder; rbd-mirror restarts its replayers)."""
    rbd = ceph.rbd()
    try:
        with rbd.Image(client.ioctx(), name) as handle:
            for owner in handle.lock_get_owners():
                LOG.warning("%s: breaking the lock of %s, which did not release it after the forced promote",
                            name, owner.get("owner"))
                handle.lock_break(owner["mode"], owner["owner"])
    except rbd.Error as exc:
        LOG.info("%s: could not break its lock yet: %s", name, exc)


def _message(source: ClusterConfig, target: ClusterConfig, reachable: bool, demote_errors: dict[str, str]) -> str:
    """For the admin: how clean the failover was."""
    image_errors = {k: v for k, v in demote_errors.items() if v != UNREACHABLE}
    if not reachable:
        return (f"{source.cluster_name} was unreachable: every volume was force-promoted on "
                f"{target.cluster_name} from its last mirrored state")
    if image_errors:
        return (f"{source.cluster_name} answered, but {len(image_errors)} volume(s) could not be demoted "
                f"and were force-promoted: " + "; ".join(f"{k}: {v}" for k, v in sorted(image_errors.items())[:20]))
    return f"clean failover: every volume demoted on {source.cluster_name} first"
