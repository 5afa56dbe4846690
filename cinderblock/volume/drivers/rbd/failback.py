"""Failback: the primary serves the volumes again, with what was written on the target meanwhile.

No manual `rbd` command is needed: for each image, when both sides are primary (after a forced
failover) the primary's stale copy is demoted and resynced from the target; then, once the primary's
copy replays and is caught up, the target is demoted and the primary promoted. Every step is chosen
from the images' current mirror state, so running failback again resumes where it stopped.
"""
from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import FailoverResult, ProgressCallback, VolumeFailover, VolumeRef, no_progress
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.connection import ClusterClient
from cinderblock.volume.drivers.rbd.failover import FailoverSettings, in_parallel
from cinderblock.volume.drivers.rbd.mirror_status import caught_up, split_brain
from cinderblock.volume.drivers.rbd.sites import Sites

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Copy:
    """One side's copy of an image as last seen."""

    primary: bool
    status: ceph.Info


def _look(client: ClusterClient, name: str) -> _Copy | None:
    rbd = ceph.rbd()
    try:
        with rbd.Image(client.ioctx(), name) as handle:
            return _Copy(bool(handle.mirror_image_get_info().get("primary")), handle.mirror_image_get_status())
    except rbd.ImageNotFound:
        return None


class Failback:
    """Moves the backend's images from the active target back to the primary cluster."""

    def __init__(self, sites: Sites, settings: FailoverSettings) -> None:
        self.sites = sites
        self.settings = settings

    def run(self, volumes: Sequence[VolumeRef], progress: ProgressCallback = no_progress) -> FailoverResult:
        source, primary = self.sites.active_config, self.sites.primary
        primary_client = self.sites.client(primary)
        try:
            primary_client.ioctx()
        except DriverError as exc:
            primary_client.reset()
            raise DriverError(f"cannot fail back: the primary cluster is unreachable: {exc}") from exc
        source_client = self.sites.client(source)
        source_client.ioctx()
        resynced: list[str] = []

        def back(volume: VolumeRef) -> VolumeFailover:
            try:
                return _ImageFailback(source_client, primary_client, volume, resynced).run(
                    self.settings.failback_timeout)
            except Exception as exc:  # noqa: BLE001 -- reported per volume, failback can be rerun
                return VolumeFailover(volume.id, ok=False, error=f"failback: {type(exc).__name__}: {exc}")

        results = in_parallel(volumes, back, self.settings.workers, progress)
        failed = [r for r in results if not r.ok]
        if failed:  # stay on the target; a new failback resumes from the images' state
            raise DriverError(f"failback incomplete for {len(failed)} volume(s), still served by "
                              f"{source.cluster_name}: " + "; ".join(f"{r.volume_id}: {r.error}" for r in failed[:10]))
        self.sites.set_active(None)
        message = f"failed back to {primary.cluster_name}"
        if resynced:
            message += f"; {len(set(resynced))} diverged volume(s) resynced from {source.cluster_name}"
        return FailoverResult(active_backend_id=None, volumes=tuple(results), message=message)


class _ImageFailback:
    """The failback of one image: look at both copies, take the step that calls for, again."""

    def __init__(self, source: ClusterClient, primary: ClusterClient, volume: VolumeRef,
                 resynced: list[str]) -> None:
        self.source = source  # the active (target) cluster
        self.primary = primary
        self.volume = volume
        self.name = volume.name
        self.resynced = resynced
        self.demoted_at: datetime.datetime | None = None
        self.last_state: object = None

    def run(self, timeout: float) -> VolumeFailover:
        rbd = ceph.rbd()
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                done = self.step()
            except rbd.Error as exc:  # transient while rbd-mirror deletes/recreates the copy: retry
                if str(exc) != last_error:
                    LOG.info("failback %s: %s (retrying)", self.name, exc)
                last_error = str(exc)
                time.sleep(0.5)
                continue
            if done is not None:
                return done
        raise DriverError(f"{self.name} did not catch up within {timeout:.0f}s"
                          + (f" (last error: {last_error})" if last_error else ""))

    def step(self) -> VolumeFailover | None:
        """One look at both copies and the step it calls for: the outcome when done, else None (after
        acting on what was seen)."""
        rbd = ceph.rbd()
        name = self.name
        here, there = _look(self.primary, name), _look(self.source, name)
        state = (None if here is None else (here.primary, here.status.get("state"), here.status.get("description")),
                 None if there is None else there.primary)
        if state != self.last_state:
            LOG.info("failback %s: primary copy %s, active copy primary=%s", name, state[0], state[1])
        self.last_state = state
        if there is None:
            raise DriverError(f"{name} does not exist on the active cluster")
        if here is not None and here.primary and not there.primary:
            return VolumeFailover(self.volume.id, ok=True, data_age_seconds=0.0)
        if here is not None and here.primary and there.primary:
            # Split brain after a forced failover: the primary's copy is stale. Resync it.
            LOG.warning("%s is primary on both clusters: demoting and resyncing the primary's copy", name)
            with rbd.Image(self.primary.ioctx(), name) as handle:
                handle.mirror_image_demote()
                handle.mirror_image_resync()
            self.resynced.append(self.volume.id)
            time.sleep(0.5)
            return None
        if here is None:  # being (re)created by the primary's rbd-mirror
            time.sleep(0.5)
            return None
        if there.primary:
            if split_brain(here.status):
                with rbd.Image(self.primary.ioctx(), name) as handle:
                    handle.mirror_image_resync()
                self.resynced.append(self.volume.id)
                time.sleep(0.5)
                return None
            if not caught_up(here.status):
                time.sleep(0.3)
                return None
            with rbd.Image(self.source.ioctx(), name) as handle:
                handle.mirror_image_demote()
            self.demoted_at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=1)
        # Neither side primary: promote the primary once it has replayed the demotion. The primary's
        # copy was itself demoted at the failover, so librbd would also accept a non-forced promote
        # of a copy that has not replayed anything yet: check the replay ourselves first.
        if not self._demotion_replayed():
            time.sleep(0.3)
            return None
        try:
            with rbd.Image(self.primary.ioctx(), name) as handle:
                handle.mirror_image_promote(False)
            return VolumeFailover(self.volume.id, ok=True, data_age_seconds=0.0)
        except rbd.Error as exc:
            LOG.debug("%s: promote on the primary not yet possible: %s", name, exc)
            time.sleep(0.3)
            return None

    def _demotion_replayed(self) -> bool:
        """The primary's copy holds everything up to the active copy's demotion.

        Snapshot mode: the primary has a complete copy of the active side's demotion snapshot. Journal
        mode: the primary's replayer stopped at the demotion (rbd-mirror stops replay there), as reported
        after the demotion was made."""
        rbd = ceph.rbd()
        mirror_ns = rbd.RBD_SNAP_NAMESPACE_TYPE_MIRROR
        with rbd.Image(self.source.ioctx(), self.name, read_only=True) as handle:
            if handle.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT:
                snaps = [s for s in handle.list_snaps() if s.get("namespace") == mirror_ns]
                if not snaps:
                    return False
                last = max(snaps, key=lambda s: int(s["id"]))
                if last.get("mirror", {}).get("state") != rbd.RBD_SNAP_MIRROR_STATE_PRIMARY_DEMOTED:
                    return False
                with rbd.Image(self.primary.ioctx(), self.name, read_only=True) as copy:
                    return any(s.get("namespace") == mirror_ns and s.get("mirror", {}).get("complete")
                               and s.get("mirror", {}).get("primary_snap_id") == last["id"]
                               for s in copy.list_snaps())
        with rbd.Image(self.primary.ioctx(), self.name, read_only=True) as copy:
            status = copy.mirror_image_get_status()
        if status.get("state") != rbd.MIRROR_IMAGE_STATUS_STATE_STOPPED:
            return False
        updated = status.get("last_update")
        return self.demoted_at is None or (isinstance(updated, datetime.datetime) and updated >= self.demoted_at)
