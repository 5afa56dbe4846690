"""Failover, failback, freeze/thaw and group failover of the file driver's replication.

The switch itself (which site serves each volume) lives here; the copies it relies on are made by
the replicator (replication.py, cycle.py) and committed by replica_store.py. A failover pauses the
replicator's workers, makes a final sync from every site still readable (else promotes the last
complete copy) and records the new sites in the registry; on any error it restores the registry.
A final sync that keeps failing while the old site is readable fails that volume's failover (it
stays where it is, with every write): promoting an older copy then would lose writes silently.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import (
    FailoverResult,
    ModelUpdate,
    ProgressCallback,
    VolumeFailover,
    VolumeRef,
    no_progress,
    resolve_failover_target,
)
from cinderblock.volume.drivers.file import copy, replica_store as store
from cinderblock.volume.drivers.file.cycle import SETTLE
from cinderblock.volume.drivers.file.registry import CopyStates, Registry
from cinderblock.volume.drivers.file.replication import Replicator
from cinderblock.volume.drivers.file.sites import PRIMARY, SiteLayout
from cinderblock.volume.targets.base import Target

LOG = logging.getLogger(__name__)

FAILOVER_WORKERS = 16
# A final sync that fails is tried again (a transient error must not fail the volume), this many
# times in all, this many seconds apart.
FINAL_SYNC_ATTEMPTS = 3
FINAL_SYNC_RETRY_SECONDS = 0.5


class Failover:
    """Switches the site serving the backend (failover_host) or a group's volumes (failover_group)."""

    def __init__(self, name: str, layout: SiteLayout, registry: Registry, states: CopyStates,
                 replicator: Replicator, target: Target) -> None:
        self._name = name
        self._layout = layout
        self._registry = registry
        self._states = states
        self._replicator = replicator
        self._target = target

    def _resolve_target(self, secondary_id: str | None, current: str) -> str:
        """The contract's rule (driver.resolve_failover_target), in site ids (PRIMARY for None)."""
        active = None if current == PRIMARY else current
        return resolve_failover_target(self._layout.devices, active, secondary_id) or PRIMARY

    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        previous = self._layout.backend_site()
        new_site = self._resolve_target(secondary_id, previous)
        with self._replicator.paused():
            saved = self._registry.snapshot()
            try:
                # Replicated volumes not named follow nobody: they stay where they are.
                named = {v.id for v in volumes}
                with self._registry.lock:
                    for volume_id, entry in self._registry.volumes.items():
                        if volume_id not in named and not entry.get("active"):
                            entry["active"] = previous
                results, message = self._switch(volumes, new_site, progress)
                self._layout.active = None if new_site == PRIMARY else new_site
                with self._registry.lock:
                    for result in results:
                        moved = self._registry.volumes.get(result.volume_id)
                        if moved is not None:  # ok: follows the backend again; else stays where it was
                            moved["active"] = None if result.ok else (moved.get("active") or previous)
                    self._registry.save()
            except Exception:
                self._layout.active = None if previous == PRIMARY else previous
                self._registry.restore(saved)
                raise
        progress(100)
        return FailoverResult(active_backend_id=self._layout.active, volumes=results, message=message)

    def _switch(self, volumes: Sequence[VolumeRef], new_site: str,
                progress: ProgressCallback = no_progress) -> tuple[tuple[VolumeFailover, ...], str]:
        """Make new_site serve volumes: final sync from a readable site, else promote the copy."""
        if not self._layout.reachable(new_site):
            raise DriverError(f"replication target {new_site} is not reachable")
        self._replicator.recover_site(new_site)
        for volume in volumes:
            if volume.id not in self._registry.volumes and self._layout.devices:
                self._replicator.register(volume)
        old_sites = {v.id: self._registry.volume_site(v.id, v.replication_driver_data) for v in volumes}
        reachable = {site: self._layout.reachable(site) for site in set(old_sites.values())}
        for site, ok in reachable.items():
            if ok and site != new_site:
                self._replicator.recover_site(site)
        units: dict[str, list[VolumeRef]] = {}
        for volume in volumes:
            entry = self._registry.volumes.get(volume.id)
            group = entry.get("group") if entry is not None else None
            units.setdefault(f"group:{group}:{old_sites[volume.id]}" if group else volume.id, []).append(volume)
        if any(ok for site, ok in reachable.items() if site != new_site):
            time.sleep(SETTLE)  # once for all: the final syncs find settled mtimes (see _send_locked)
        done = [0]
        lock = threading.Lock()

        def one(unit: list[VolumeRef]) -> list[VolumeFailover]:
            try:
                return self._switch_unit(unit, old_sites, reachable, new_site)
            finally:
                with lock:
                    done[0] += len(unit)
                    progress(min(99, done[0] * 100 // max(1, len(volumes))))

        with ThreadPoolExecutor(max_workers=FAILOVER_WORKERS) as pool:
            outcomes = [r for rs in pool.map(one, units.values()) for r in rs]
        for _, directory in self._layout.site_dirs(new_site):
            copy.fsync_path(str(store.meta_dir(directory)))
        lost = sorted(s for s, ok in reachable.items() if not ok)
        by_id = {r.volume_id: r for r in outcomes}
        return tuple(by_id[v.id] for v in volumes), _message(outcomes, new_site, lost)

    def _switch_unit(self, unit: list[VolumeRef], old_sites: Mapping[str, str], reachable: Mapping[str, bool],
                     new_site: str) -> list[VolumeFailover]:
        out: list[VolumeFailover] = []
        todo = []
        for volume in unit:
            old = old_sites[volume.id]
            entry = self._registry.volumes.get(volume.id)
            if entry is None:
                out.append(VolumeFailover(volume.id, ok=False, error="the volume is not replicated"))
            elif old == new_site:
                out.append(self._promoted(volume.id, new_site, 0.0))
            else:
                todo.append(volume)
        if not todo:
            return out
        old = old_sites[todo[0].id]
        synced: set[str] = set()
        if reachable.get(old):
            synced, error = self._final_sync(todo, new_site)
            if error is not None:  # old still serves every write: an older copy on new_site would lose some
                return out + [VolumeFailover(v.id, ok=False, error=(
                    f"final sync to {new_site} failed {FINAL_SYNC_ATTEMPTS} times ({error}); the volume stays "
                    f"on {old}, which holds every write: nothing lost")) for v in todo]
        now = time.time()
        for volume in todo:
            with self._registry.volume_lock(volume.id):
                try:
                    # Not synced: old is unreachable or holds no file of the volume; its last copy it is.
                    out.append(self._promote(volume.id, old, new_site, volume.id in synced, now))
                except Exception as error:  # noqa: BLE001 -- reported per volume
                    LOG.exception("failover of volume %s to %s failed", volume.id, new_site)
                    out.append(VolumeFailover(volume.id, ok=False, error=str(error)))
        return out

    def _final_sync(self, unit: list[VolumeRef], new_site: str) -> tuple[set[str], str | None]:
        """Send the unit's last writes to new_site: the ids whose copy there is now complete, or why not."""
        ids = [v.id for v in unit]
        error: BaseException | None = None
        for attempt in range(1, FINAL_SYNC_ATTEMPTS + 1):
            try:
                sent = self._replicator.send(ids, only=new_site, live=len(unit) == 1)
                return {i for i, sites in sent.items() if new_site in sites}, None
            except Exception as failure:  # noqa: BLE001 -- retried, then reported per volume
                error = failure
                LOG.warning("final sync of %s to %s failed (attempt %d of %d): %s", ids, new_site, attempt,
                            FINAL_SYNC_ATTEMPTS, failure)
            if attempt < FINAL_SYNC_ATTEMPTS:
                time.sleep(FINAL_SYNC_RETRY_SECONDS)
        return set(), str(error)

    def _promote(self, volume_id: str, old: str, new_site: str, synced: bool, now: float) -> VolumeFailover:
        entry = self._registry.volumes[volume_id]
        new_dir = self._layout.pool_dir(new_site, entry["pool"])
        manifest = store.read_manifest(new_dir, volume_id)
        if manifest is None or not (new_dir / f"volume-{volume_id}").is_file():
            return VolumeFailover(volume_id, ok=False, error=f"no complete copy of the volume on {new_site}")
        # Never 0.0 unsynced: 0.0 says a final sync lost nothing (the contract, and _message).
        age = 0.0 if synced else max(0.001, now - float(manifest["taken_at"]))
        if synced:  # the old site holds the same bytes: it becomes a complete copy of the new one
            old_dir = self._layout.pool_dir(old, entry["pool"])
            # Its file must still be what the final sync read: a write since (a consumer still
            # attached there) changes the fingerprint and the next copy there is a whole one.
            promoted = dict(manifest, source=new_site, fp=None, dest_fp=manifest.get("fp"))
            store.write_json(store.manifest_path(old_dir, volume_id), store.manifest_payload(promoted), sync=False)
            self._states.set(volume_id, old, manifest["taken_at"])
        else:
            self._states.ensure(volume_id, old)
        # The new site serves the volume now: its copy is no longer a replica.
        store.manifest_path(new_dir, volume_id).unlink(missing_ok=True)
        self._states.drop(volume_id, new_site)
        entry["active"] = new_site
        path = new_dir / f"volume-{volume_id}"
        with contextlib.suppress(DriverError):
            if self._target.export_exists(volume_id):
                self._target.refresh_export(volume_id, str(path))
        return self._promoted(volume_id, new_site, age, str(path))

    @staticmethod
    def _promoted(volume_id: str, site: str, age: float, path: str | None = None) -> VolumeFailover:
        # Snapshots are not replicated: only the primary's pools hold them.
        return VolumeFailover(volume_id, ok=True, data_age_seconds=round(age, 3), snapshots_kept=site == PRIMARY,
                              update=ModelUpdate(provider_location=path,
                                                 replication_driver_data=json.dumps({"active": site})))

    def freeze_backend(self) -> None:
        self._check_active_reachable("freeze")

    def thaw_backend(self) -> None:
        self._check_active_reachable("thaw")

    def _check_active_reachable(self, what: str) -> None:
        site = self._layout.backend_site()
        if self._layout.replicated and not self._layout.reachable(site):
            raise DriverError(f"cannot {what}: the active site {site} is unreachable")
        LOG.info("%s of backend %s (active site %s)", what, self._name, site)

    # -- SupportsGroupReplication --------------------------------------------------------------

    def failover_group(self, group_id: str, volumes: Sequence[VolumeRef],
                       secondary_id: str | None) -> FailoverResult:
        current = self._registry.volume_site(volumes[0].id, volumes[0].replication_driver_data) if volumes else PRIMARY
        ids = [d.backend_id for d in self._layout.devices]
        if secondary_id is not None and secondary_id != PRIMARY and secondary_id not in ids:
            raise InvalidReplicationTarget(f"{secondary_id!r} is not a replication target ({ids})")
        if secondary_id is None:
            choices = [i for i in ids if i != current]
            if not choices:
                raise InvalidReplicationTarget("no replication target other than the group's site")
            secondary_id = choices[0]
        new_site = secondary_id
        with self._replicator.paused():
            saved = self._registry.snapshot()
            try:
                results, message = self._switch(volumes, new_site)
                with self._registry.lock:
                    for result in results:
                        entry = self._registry.volumes.get(result.volume_id)
                        if result.ok and entry is not None:
                            entry["active"] = None if new_site == self._layout.backend_site() else new_site
                    self._registry.save()
            except Exception:
                self._registry.restore(saved)
                raise
        return FailoverResult(active_backend_id=None if new_site == PRIMARY else new_site,
                              volumes=results, message=message)


def _message(outcomes: Sequence[VolumeFailover], new_site: str, lost: Sequence[str]) -> str:
    """For the admin: where the volumes are now and what, if anything, was lost."""
    failed = [r for r in outcomes if not r.ok]
    stale = [age for r in outcomes if r.ok and (age := r.data_age_seconds)]
    message = f"{len(outcomes) - len(failed)} volume(s) now served by {new_site}"
    if lost:
        message += f"; site(s) {', '.join(lost)} unreachable"
    if stale:
        message += (f"; {len(stale)} volume(s) promoted from their last complete copy, up to {max(stale):.1f} s "
                    f"old: writes made after it are lost")
    elif len(outcomes) > len(failed):
        message += "; every volume served has all its writes, no data lost"
    if failed:
        message += f"; {len(failed)} volume(s) did not fail over and stay where they were: {failed[0].error}"
    return message
