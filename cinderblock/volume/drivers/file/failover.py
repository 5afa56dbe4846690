"""Failover, failback, freeze/thaw and group failover of the file driver's replication.

The switch itself (which site serves each volume) lives here; the copies it relies on are made by
replication.py (the worker and one cycle) and committed by replica_store.py. Methods run on the
FileReplication object they are mixed into.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    FailoverResult,
    ModelUpdate,
    ProgressCallback,
    ReplicaState,
    ReplicationDevice,
    SupportsGroupReplication,
    SupportsReplication,
    VolumeFailover,
    VolumeRef,
    no_progress,
    resolve_failover_target,
)
from cinderblock.volume.drivers.file import copy, replica_store as store

LOG = logging.getLogger(__name__)

PRIMARY = PRIMARY_BACKEND_ID
FAILOVER_WORKERS = 16
# mtime younger than this (s) at the point in time: a later write could share the timestamp tick.
SETTLE = 0.05


class FileFailover(SupportsReplication, SupportsGroupReplication):
    """The SupportsReplication / SupportsGroupReplication side of FileReplication."""

    # -- SupportsReplication -------------------------------------------------------------------

    def set_active_backend(self, backend_id: str | None) -> None:
        self._active = None if backend_id in (None, "", PRIMARY) else backend_id

    def replication_targets(self) -> tuple[ReplicationDevice, ...]:
        return self._devices

    def replication_capabilities(self) -> dict[str, Any]:
        if not self._devices:
            return {"replication_enabled": False}
        now = time.time()
        lag = 0.0
        pending = 0
        for volume_id, entry in list(self._registry.volumes.items()):
            for site in self._dest_sites(volume_id):
                last, nbytes, _ = self._states.get((volume_id, site), [None, 0, False])
                lag = max(lag, now - float(last if last is not None else entry.get("created_at", now)))
                pending += int(nbytes)
        return {"replication_enabled": True, "replication_type": "async",
                "replication_targets": [d.backend_id for d in self._devices],
                "replication_count": len(self._devices),
                "replication_interval": int(self.options.get("replication_interval") or 60),
                "group_replication_enabled": True, "consistent_group_replication_enabled": True,
                "replication_lag_max_seconds": round(lag, 3), "replication_bytes_pending": pending,
                "active_replication_site": self._backend_site()}

    def replication_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        out = {}
        for volume_id in list(self._registry.volumes):
            out[volume_id] = tuple(
                ReplicaState(site, *self._states.get((volume_id, site), [None, 0, False]))
                for site in self._dest_sites(volume_id))
        return out

    def _resolve_target(self, secondary_id: str | None, current: str) -> str:
        """The contract's rule (driver.resolve_failover_target), in site ids (PRIMARY for None)."""
        active = None if current == PRIMARY else current
        return resolve_failover_target(self._devices, active, secondary_id) or PRIMARY

    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        previous = self._backend_site()
        new_site = self._resolve_target(secondary_id, previous)
        with self._worker_paused():
            saved = self._registry.snapshot()
            try:
                # Replicated volumes not named follow nobody: they stay where they are.
                named = {v.id for v in volumes}
                with self._registry.lock:
                    for volume_id, entry in self._registry.volumes.items():
                        if volume_id not in named and not entry.get("active"):
                            entry["active"] = previous
                results, message = self._switch(volumes, new_site, progress)
                self._active = None if new_site == PRIMARY else new_site
                with self._registry.lock:
                    for result in results:
                        entry = self._registry.volumes.get(result.volume_id)
                        if entry is not None:  # ok: follows the backend again; else stays where it was
                            entry["active"] = None if result.ok else (entry.get("active") or previous)
                    self._registry.save()
            except Exception:
                self._active = None if previous == PRIMARY else previous
                self._registry.restore(saved)
                raise
        progress(100)
        return FailoverResult(active_backend_id=self._active, volumes=results, message=message)

    def _switch(self, volumes: Sequence[VolumeRef], new_site: str,
                progress: ProgressCallback = no_progress) -> tuple[tuple[VolumeFailover, ...], str]:
        """Make new_site serve volumes: final sync from a readable site, else promote the copy."""
        if not self._site_reachable(new_site):
            raise DriverError(f"replication target {new_site} is not reachable")
        self._recover_site(new_site)
        for volume in volumes:
            if volume.id not in self._registry.volumes and self._devices:
                self._register(volume)
        old_sites = {v.id: self._volume_site(v.id, v.replication_driver_data) for v in volumes}
        reachable = {site: self._site_reachable(site) for site in set(old_sites.values())}
        for site, ok in reachable.items():
            if ok and site != new_site:
                self._recover_site(site)
        units: dict[str, list[VolumeRef]] = {}
        for volume in volumes:
            group = self._registry.volumes.get(volume.id, {}).get("group")
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
        for _, directory in self._site_dirs(new_site):
            copy.fsync_path(str(store.meta_dir(directory)))
        lost = sorted(s for s, ok in reachable.items() if not ok)
        ages = [r.data_age_seconds for r in outcomes if r.ok and r.data_age_seconds]
        failed = [r for r in outcomes if not r.ok]
        message = f"{len(outcomes) - len(failed)} volume(s) now served by {new_site}"
        if lost:
            message += (f"; site(s) {', '.join(lost)} unreachable: promoted the last complete copies"
                        f" (data up to {max(ages or [0.0]):.1f} s old)")
        else:
            message += "; final sync done, no data lost"
        if failed:
            message += f"; {len(failed)} volume(s) failed"
        by_id = {r.volume_id: r for r in outcomes}
        return tuple(by_id[v.id] for v in volumes), message

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
        synced = False
        if reachable.get(old):
            try:
                self._send([v.id for v in todo], only=new_site, live=len(todo) == 1)
                synced = True
            except Exception as error:  # noqa: BLE001 -- fall back to the last complete copy
                LOG.warning("final sync of %s to %s failed, promoting the last complete copy: %s",
                            [v.id for v in todo], new_site, error)
        now = time.time()
        for volume in todo:
            with self._vlock(volume.id):
                try:
                    out.append(self._promote(volume.id, old, new_site, synced, now))
                except Exception as error:  # noqa: BLE001 -- reported per volume
                    LOG.exception("failover of volume %s to %s failed", volume.id, new_site)
                    out.append(VolumeFailover(volume.id, ok=False, error=str(error)))
        return out

    def _promote(self, volume_id: str, old: str, new_site: str, synced: bool, now: float) -> VolumeFailover:
        entry = self._registry.volumes[volume_id]
        new_dir = self._site_pool_dir(new_site, entry["pool"])
        manifest = store.read_manifest(new_dir, volume_id)
        if manifest is None or not (new_dir / f"volume-{volume_id}").is_file():
            return VolumeFailover(volume_id, ok=False, error=f"no complete copy of the volume on {new_site}")
        age = 0.0 if synced else max(0.0, now - float(manifest["taken_at"]))
        if synced:  # the old site holds the same bytes: it becomes a complete copy of the new one
            old_dir = self._site_pool_dir(old, entry["pool"])
            # Its file must still be what the final sync read: a write since (a consumer still
            # attached there) changes the fingerprint and the next copy there is a whole one.
            promoted = dict(manifest, source=new_site, fp=None, dest_fp=manifest.get("fp"))
            store.write_json(store.manifest_path(old_dir, volume_id), store.manifest_payload(promoted), sync=False)
            self._states[(volume_id, old)] = [manifest["taken_at"], 0, False]
        else:
            self._states.setdefault((volume_id, old), [None, 0, False])
        # The new site serves the volume now: its copy is no longer a replica.
        store.manifest_path(new_dir, volume_id).unlink(missing_ok=True)
        self._states.pop((volume_id, new_site), None)
        entry["active"] = new_site
        path = new_dir / f"volume-{volume_id}"
        with contextlib.suppress(DriverError):
            if self.target.export_exists(volume_id):
                self.target.refresh_export(volume_id, str(path))
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
        site = self._backend_site()
        if self._devices and not self._site_reachable(site):
            raise DriverError(f"cannot {what}: the active site {site} is unreachable")
        LOG.info("%s of backend %s (active site %s)", what, self.backend_name, site)

    # -- SupportsGroupReplication --------------------------------------------------------------

    def enable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        if not self._devices:
            raise DriverError("no replication_device is configured for this backend")
        for volume in volumes:
            self._register(volume, group=group_id)
        with self._registry.lock:
            self._registry.groups[group_id] = sorted({v.id for v in volumes})
            self._registry.save()
        self._send([v.id for v in volumes])
        return tuple(ModelUpdate(replication_status="enabled") for _ in volumes)

    def disable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        for volume in volumes:
            with self._vlock(volume.id), self._registry.lock:
                entry = self._registry.volumes.get(volume.id)
                if entry is not None and entry.get("active"):
                    entry["group"] = None  # failed over on its own: keep knowing where it lives
                else:
                    self._registry.volumes.pop(volume.id, None)
        with self._registry.lock:
            self._registry.groups.pop(group_id, None)
            self._registry.save()
        return tuple(ModelUpdate(replication_status="disabled") for _ in volumes)

    def failover_group(self, group_id: str, volumes: Sequence[VolumeRef],
                       secondary_id: str | None) -> FailoverResult:
        current = self._volume_site(volumes[0].id, volumes[0].replication_driver_data) if volumes else PRIMARY
        ids = [d.backend_id for d in self._devices]
        if secondary_id is not None and secondary_id != PRIMARY and secondary_id not in ids:
            raise InvalidReplicationTarget(f"{secondary_id!r} is not a replication target ({ids})")
        if secondary_id is None:
            choices = [i for i in ids if i != current]
            if not choices:
                raise InvalidReplicationTarget("no replication target other than the group's site")
            secondary_id = choices[0]
        new_site = secondary_id
        with self._worker_paused():
            saved = self._registry.snapshot()
            try:
                results, message = self._switch(volumes, new_site)
                with self._registry.lock:
                    for result in results:
                        entry = self._registry.volumes.get(result.volume_id)
                        if result.ok and entry is not None:
                            entry["active"] = None if new_site == self._backend_site() else new_site
                    self._registry.save()
            except Exception:
                self._registry.restore(saved)
                raise
        return FailoverResult(active_backend_id=None if new_site == PRIMARY else new_site,
                              volumes=results, message=message)
