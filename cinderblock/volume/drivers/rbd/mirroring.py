"""rbd-mirror replication for the RBD driver: per-image mirroring, parallel failover and failback, lag.

Every image of a replicated type is mirrored (pool mirroring in `image` mode, peers set up outside,
e.g. by `scripts/ceph-clusters start --pair`). Journal mode: exclusive-lock + journaling, every write
replayed. Snapshot mode (`replication:mode=snapshot`): a mirror-snapshot schedule on the pool every
`replication_interval` (type override `replication:interval`), fast-diff deltas.

Failover demotes every image on the active cluster (under `replication_connect_timeout`) and promotes
it on the target, in parallel. A clean demote gets a non-forced promote, which succeeds once the
target has replayed the demotion (so nothing written is lost). Only images whose demote failed are
force-promoted, and the result says whether the whole cluster was unreachable or which images failed.

Failback (`default`) needs no manual `rbd` command: for each image, when both sides are primary (after
a forced failover) the primary's stale copy is demoted and resynced from the target; then, once the
primary's copy replays and is caught up, the target is demoted and the primary promoted. Every step is
chosen from the images' current mirror state, so running failback again resumes where it stopped.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
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
    SupportsReplication,
    VolumeFailover,
    VolumeRef,
    no_progress,
    replication_devices,
    resolve_failover_target,
)
from cinderblock.volume.drivers.rbd.connection import ClusterClient, ClusterConfig, UnreachableCluster, bindings

LOG = logging.getLogger(__name__)

MODES = ("journal", "snapshot")


def parse_status(description: str) -> dict[str, Any]:
    """The JSON part of an rbd-mirror status description ('replaying, {...}')."""
    start = description.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(description[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def replica_lag(status: Mapping[str, Any], now: float) -> tuple[float | None, int, bool]:
    """(time of the last complete copy, bytes pending, sync in flight) from a non-primary image's local
    mirror status."""
    _, rbd = bindings()
    details = parse_status(str(status.get("description") or ""))
    state = status.get("state")
    updated = status.get("last_update")
    updated_at = updated.timestamp() if hasattr(updated, "timestamp") else None
    if state == rbd.MIRROR_IMAGE_STATUS_STATE_SYNCING:
        return None, 0, True
    if "local_snapshot_timestamp" in details:  # snapshot mode
        local = float(details.get("local_snapshot_timestamp") or 0) or None
        remote = float(details.get("remote_snapshot_timestamp") or 0)
        behind = bool(local and remote and remote > local)
        pending = int(details.get("last_snapshot_bytes") or 0) if behind else 0
        in_flight = details.get("replay_state") == "syncing" or behind
        return local, pending, in_flight
    if "entries_behind_primary" in details:  # journal mode: caught up as of the status update
        behind = int(details.get("entries_behind_primary") or 0)
        if behind == 0:
            return updated_at or now, 0, False
        # Journal entries carry writes of varied size; 4 KiB each is the usual guest write.
        return None, behind * 4096, True
    return None, 0, state != rbd.MIRROR_IMAGE_STATUS_STATE_REPLAYING


def handle_mode(client: ClusterClient, name: str) -> str:
    _, rbd = bindings()
    try:
        with rbd.Image(client.ioctx(), name, read_only=True) as handle:
            return "snapshot" if handle.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT else "journal"
    except rbd.Error:
        return "unknown"


class RBDReplication(SupportsReplication):
    """Mixed into RBDDriver (which supplies options, primary, pool_name, clients, image())."""

    options: Mapping[str, Any]
    primary: ClusterConfig
    pool_name: str
    clients: Any

    def _init_replication(self) -> None:
        self.active_backend_id: str | None = None
        self._targets: tuple[ReplicationDevice, ...] = ()
        self._target_configs: dict[str, ClusterConfig] = {}
        timeout = int(self.options.get("replication_connect_timeout", 5))
        self.connect_timeout: float | None = float(timeout) if timeout >= 0 else None
        self.workers = int(self.options.get("rbd_failover_workers") or 32)
        self.promote_timeout = float(self.options.get("rbd_failover_promote_timeout") or 60)
        self.failback_timeout = 600.0
        self.lock_grace = 5.0
        self.interval = int(self.options.get("replication_interval") or 60)
        self._status_clients: dict[str, ClusterClient] = {}

    def _stop_replication(self) -> None:
        for client in self._status_clients.values():
            client.close()
        self._status_clients.clear()

    # -- configuration -------------------------------------------------------------------------

    def set_active_backend(self, backend_id: str | None) -> None:
        self.active_backend_id = None if backend_id in (None, "", PRIMARY_BACKEND_ID) else backend_id

    def replication_targets(self) -> tuple[ReplicationDevice, ...]:
        return self._targets

    def _setup_replication(self) -> None:
        self._targets = replication_devices(self.options)
        configs = {}
        for device in self._targets:
            opts = device.options
            configs[device.backend_id] = ClusterConfig(
                backend_id=device.backend_id,
                cluster_name=opts.get("cluster_name") or device.backend_id,
                conf=opts.get("conf") or f"/etc/ceph/{device.backend_id}.conf",
                user=opts.get("user") or self.primary.user,
                secret_uuid=opts.get("secret_uuid") or self.primary.secret_uuid,
                pool=self.pool_name,
            )
        self._target_configs = configs
        if self.active_backend_id is not None and self.active_backend_id not in configs:
            raise DriverError(f"the active backend {self.active_backend_id!r} is not a replication_device "
                              f"(targets: {sorted(configs)})")
        mode = str(self.options.get("rbd_replication_mode") or "journal")
        if mode not in MODES:
            raise DriverError(f"rbd_replication_mode must be one of {MODES}, not {mode!r}")
        if self._targets:
            self._ensure_schedule(self.active_config)  # type: ignore[attr-defined]

    def _config_for(self, backend_id: str | None) -> ClusterConfig:
        if backend_id in (None, PRIMARY_BACKEND_ID):
            return self.primary
        config = self._target_configs.get(backend_id)  # type: ignore[arg-type]
        if config is None:
            raise InvalidReplicationTarget(f"{backend_id!r} is not a replication target of this backend "
                                           f"({sorted(self._target_configs)})")
        return config

    def _ensure_schedule(self, config: ClusterConfig, interval: int | None = None) -> None:
        """A pool-level mirror-snapshot schedule on config's cluster (snapshot-mode images use it)."""
        minutes = max(1, math.ceil((interval or self.interval) / 60))
        try:
            self.clients.get(config).mon_command({"prefix": "rbd mirror snapshot schedule add",
                                                  "level_spec": f"{self.pool_name}/", "interval": f"{minutes}m"},
                                                 mgr=True)
        except Exception as exc:  # noqa: BLE001 -- no mgr: the driver still snapshots at failover
            LOG.warning("could not add a mirror-snapshot schedule on %s: %s", config.cluster_name, exc)

    def _mode(self, volume: VolumeRef) -> str:
        mode = str(volume.extra_specs.get("replication:mode") or self.options.get("rbd_replication_mode")
                   or "journal")
        if mode not in MODES:
            raise DriverError(f"replication:mode must be one of {MODES}, not {mode!r}")
        return mode

    def _replicates(self, volume: VolumeRef) -> bool:
        return bool(self._targets) and volume.replicated

    def _wants_journal(self, volume: VolumeRef) -> bool:
        return self._replicates(volume) and self._mode(volume) == "journal"

    def _must_flatten(self, volume: VolumeRef) -> bool:
        # rbd-mirror needs a clone's parent mirrored too: replicated clones stand alone.
        return self._replicates(volume)

    def _replication_capabilities(self) -> dict[str, Any]:
        if not self._targets:
            return {"replication_enabled": False}
        caps: dict[str, Any] = {
            "replication_enabled": True, "replication_type": "async",
            "replication_targets": [t.backend_id for t in self._targets] + [PRIMARY_BACKEND_ID],
            "replication_count": len(self._targets),
        }
        try:
            states = self.replication_states()
        except Exception as exc:  # noqa: BLE001 -- a down peer must not stop stats
            LOG.warning("replication lag unavailable: %s", exc)
            return caps
        now = time.time()
        ages = [now - s.last_complete_at for per in states.values() for s in per if s.last_complete_at]
        caps["replication_lag_max_seconds"] = round(max(ages), 1) if ages else 0.0
        caps["replication_bytes_pending"] = sum(s.bytes_pending for per in states.values() for s in per)
        return caps

    # -- per image -----------------------------------------------------------------------------

    def _setup_new_image(self, volume: VolumeRef) -> tuple[str | None, str | None]:
        if not self._targets:
            return None, None
        if not volume.replicated:
            return "disabled", None
        return self.enable_replication(volume)

    def enable_replication(self, volume: VolumeRef) -> tuple[str, str]:
        """Mirror the volume's image (also for a retype into a replicated type)."""
        _, rbd = bindings()
        mode = self._mode(volume)
        with self.image(volume.name) as handle:  # type: ignore[attr-defined]
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
            self._ensure_image_schedule(volume.name, int(interval))
        return "enabled", json.dumps({"mode": mode}, sort_keys=True, separators=(",", ":"))

    def _ensure_image_schedule(self, name: str, interval: int) -> None:
        minutes = max(1, math.ceil(interval / 60))
        try:
            self.clients.get(self.active_config).mon_command(  # type: ignore[attr-defined]
                {"prefix": "rbd mirror snapshot schedule add", "level_spec": f"{self.pool_name}/{name}",
                 "interval": f"{minutes}m"}, mgr=True)
        except Exception as exc:  # noqa: BLE001
            LOG.warning("could not schedule mirror snapshots of %s: %s", name, exc)

    def disable_replication(self, volume: VolumeRef) -> tuple[str, None]:
        """Stop mirroring the volume's image (retype out of a replicated type); the copies on the
        targets are removed by rbd-mirror."""
        _, rbd = bindings()
        with self.image(volume.name) as handle:  # type: ignore[attr-defined]
            if handle.mirror_image_get_info().get("state") == rbd.RBD_MIRROR_IMAGE_ENABLED:
                handle.mirror_image_disable(False)
            if handle.features() & rbd.RBD_FEATURE_JOURNALING:
                handle.update_features(rbd.RBD_FEATURE_JOURNALING, False)
        return "disabled", None

    def sync_now(self, volume: VolumeRef) -> None:
        """Take a mirror snapshot now (snapshot mode; journal mode replicates every write anyway)."""
        _, rbd = bindings()
        with self.image(volume.name) as handle:  # type: ignore[attr-defined]
            if handle.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT:
                handle.mirror_image_create_snapshot()

    # -- failover ------------------------------------------------------------------------------

    def _resolve_target(self, secondary_id: str | None) -> str | None:
        return resolve_failover_target(self._targets, self.active_backend_id, secondary_id)

    def _parallel(self, items: Sequence[VolumeRef], work: Callable[[VolumeRef], VolumeFailover],
                  progress: ProgressCallback, start: int, end: int) -> list[VolumeFailover]:
        done = 0
        results: list[VolumeFailover] = []
        if not items:
            return results
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items)),
                                thread_name_prefix="rbd-failover") as pool:
            for result in pool.map(work, items):
                results.append(result)
                done += 1
                progress(start + (end - start) * done // len(items))
        return results

    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        target_id = self._resolve_target(secondary_id)
        source = self._config_for(self.active_backend_id)
        target = self._config_for(target_id)
        if target_id is None:
            return self._failback(volumes, source, target, progress)
        # The target must answer before anything changes; the source may be gone.
        target_client = self.clients.get(target)
        try:
            target_client.ioctx()
        except DriverError as exc:
            target_client.reset()
            raise DriverError(f"replication target {target_id!r} is unreachable: {exc}") from exc
        source_client = ClusterClient(source, timeout=self.connect_timeout)
        reachable = True
        try:
            source_client.ioctx()
        except DriverError as exc:
            LOG.warning("failover: %s is unreachable (%s): forcing every promotion", source.cluster_name, exc)
            reachable = False
        demote_errors: dict[str, str] = {}

        def switch(volume: VolumeRef) -> VolumeFailover:
            if reachable and not self._target_ready(target_client, volume.name):
                # Demoting before the target's first sync completes would strand both copies.
                return VolumeFailover(volume.id, ok=False, error="the target's copy never finished its initial "
                                      f"sync within {self.promote_timeout:.0f}s; the volume stays on the source")
            error = self._demote(source_client, volume.name) if reachable else "cluster unreachable"
            if error:
                demote_errors[volume.id] = error
            return self._promote(target_client, volume, force=bool(error), demote_error=error)

        try:
            results = self._parallel(volumes, switch, progress, 0, 100)
        finally:
            source_client.close()
        self._ensure_schedule(target)
        self.active_backend_id = target_id
        image_errors = {k: v for k, v in demote_errors.items() if v != "cluster unreachable"}
        if not reachable:
            message = (f"{source.cluster_name} was unreachable: every volume was force-promoted on "
                       f"{target.cluster_name} from its last mirrored state")
        elif image_errors:
            message = (f"{source.cluster_name} answered, but {len(image_errors)} volume(s) could not be demoted "
                       f"and were force-promoted: " +
                       "; ".join(f"{k}: {v}" for k, v in sorted(image_errors.items())[:20]))
        else:
            message = f"clean failover: every volume demoted on {source.cluster_name} first"
        return FailoverResult(active_backend_id=target_id, volumes=tuple(results), message=message)

    def _target_ready(self, client: ClusterClient, name: str) -> bool:
        """The target's copy exists and replays (its initial sync is done), waiting up to the promote
        timeout; True as well when the target already holds the primary copy (a resumed failover)."""
        _, rbd = bindings()
        deadline = time.monotonic() + self.promote_timeout
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

    def _demote(self, client: ClusterClient, name: str) -> str | None:
        """Demote one image; None on success (or already not primary), else why it failed."""
        _, rbd = bindings()
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

    def _target_age(self, handle: Any, now: float) -> float | None:
        try:
            last, _, _ = replica_lag(handle.mirror_image_get_status(), now)
        except Exception:  # noqa: BLE001
            return None
        return None if last is None else max(0.0, now - last)

    def _promote(self, client: ClusterClient, volume: VolumeRef, force: bool,
                 demote_error: str | None) -> VolumeFailover:
        """Promote the volume's image on client's cluster; non-forced promotes wait for the demotion to
        be replayed (then nothing is lost) and are forced only after rbd_failover_promote_timeout."""
        _, rbd = bindings()
        deadline = time.monotonic() + self.promote_timeout
        last_error = ""
        while True:
            try:
                with rbd.Image(client.ioctx(), volume.name) as handle:
                    if handle.mirror_image_get_info().get("primary"):
                        return VolumeFailover(volume.id, ok=True, data_age_seconds=0.0 if not force else None)
                    age = self._target_age(handle, time.time()) if force else 0.0
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
                                volume.name, self.promote_timeout, last_error)
                    force, demote_error = True, f"demotion not replayed in time: {last_error}"
                    deadline = time.monotonic() + self.promote_timeout
                    continue
                return VolumeFailover(volume.id, ok=False, error=f"promote failed: {last_error}")
            time.sleep(0.2 if not force else 1.0)

    def _wait_writable(self, client: ClusterClient, name: str) -> None:
        """After a forced promote the local rbd-mirror may still hold the image's lock while its replayer
        stops: wait (bounded) until a client can take the exclusive lock, i.e. the volume is usable."""
        _, rbd = bindings()
        deadline = time.monotonic() + self.promote_timeout
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
                                handle_mode(client, name), exc)
                    return
                if time.monotonic() - started > self.lock_grace:
                    self._break_stale_lock(client, name)
            time.sleep(0.3)

    def _break_stale_lock(self, client: ClusterClient, name: str) -> None:
        """The local rbd-mirror's journal replayer can hang on the dead peer while holding the image's
        lock. Break it (librbd blocklists the holder; rbd-mirror restarts its replayers)."""
        _, rbd = bindings()
        try:
            with rbd.Image(client.ioctx(), name) as handle:
                for owner in handle.lock_get_owners():
                    LOG.warning("%s: breaking the lock of %s, which did not release it after the forced promote",
                                name, owner.get("owner"))
                    handle.lock_break(owner["mode"], owner["owner"])
        except rbd.Error as exc:
            LOG.info("%s: could not break its lock yet: %s", name, exc)

    # -- failback ------------------------------------------------------------------------------

    def _failback(self, volumes: Sequence[VolumeRef], source: ClusterConfig, primary: ClusterConfig,
                  progress: ProgressCallback) -> FailoverResult:
        primary_client = self.clients.get(primary)
        try:
            primary_client.ioctx()
        except DriverError as exc:
            primary_client.reset()
            raise DriverError(f"cannot fail back: the primary cluster is unreachable: {exc}") from exc
        source_client = self.clients.get(source)
        source_client.ioctx()
        resynced: list[str] = []

        def back(volume: VolumeRef) -> VolumeFailover:
            try:
                return self._failback_one(source_client, primary_client, volume, resynced)
            except Exception as exc:  # noqa: BLE001 -- reported per volume, failback can be rerun
                return VolumeFailover(volume.id, ok=False, error=f"failback: {type(exc).__name__}: {exc}")

        results = self._parallel(volumes, back, progress, 0, 100)
        failed = [r for r in results if not r.ok]
        if failed:  # stay on the target; a new failback resumes from the images' state
            raise DriverError(f"failback incomplete for {len(failed)} volume(s), still served by "
                              f"{source.cluster_name}: " + "; ".join(f"{r.volume_id}: {r.error}" for r in failed[:10]))
        self.active_backend_id = None
        message = f"failed back to {primary.cluster_name}"
        if resynced:
            message += f"; {len(set(resynced))} diverged volume(s) resynced from {source.cluster_name}"
        return FailoverResult(active_backend_id=None, volumes=tuple(results), message=message)

    def _failback_one(self, source: ClusterClient, primary: ClusterClient, volume: VolumeRef,
                      resynced: list[str]) -> VolumeFailover:
        _, rbd = bindings()
        deadline = time.monotonic() + self.failback_timeout
        name = volume.name

        def info(client: ClusterClient) -> dict[str, Any] | None:
            try:
                with rbd.Image(client.ioctx(), name) as handle:
                    return {**handle.mirror_image_get_info(), "status": handle.mirror_image_get_status()}
            except rbd.ImageNotFound:
                return None

        last_state = None
        last_error = ""
        context: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                done = self._failback_step(source, primary, volume, resynced, info, last_state, context)
            except rbd.Error as exc:  # transient while rbd-mirror deletes/recreates the copy: retry
                if str(exc) != last_error:
                    LOG.info("failback %s: %s (retrying)", name, exc)
                last_error = str(exc)
                time.sleep(0.5)
                continue
            if isinstance(done, VolumeFailover):
                return done
            last_state = done
        raise DriverError(f"{name} did not catch up within {self.failback_timeout:.0f}s"
                          + (f" (last error: {last_error})" if last_error else ""))

    def _failback_step(self, source: ClusterClient, primary: ClusterClient, volume: VolumeRef,
                       resynced: list[str], info: Callable[[ClusterClient], dict[str, Any] | None],
                       last_state: Any, context: dict[str, Any]) -> Any:
        """One look at both copies and the step it calls for: a VolumeFailover when done, else the
        state seen (after acting on it)."""
        _, rbd = bindings()
        name = volume.name
        here, there = info(primary), info(source)
        state = (None if here is None else (here.get("primary"), here["status"].get("state"),
                                             here["status"].get("description")),
                 None if there is None else there.get("primary"))
        if state != last_state:
            LOG.info("failback %s: primary copy %s, active copy primary=%s", name, state[0], state[1])
        if there is None:
            raise DriverError(f"{name} does not exist on the active cluster")
        if here is not None and here.get("primary") and not there.get("primary"):
            return VolumeFailover(volume.id, ok=True, data_age_seconds=0.0)
        if here is not None and here.get("primary") and there.get("primary"):
            # Split brain after a forced failover: the primary's copy is stale. Resync it.
            LOG.warning("%s is primary on both clusters: demoting and resyncing the primary's copy", name)
            with rbd.Image(primary.ioctx(), name) as handle:
                handle.mirror_image_demote()
                handle.mirror_image_resync()
            resynced.append(volume.id)
            time.sleep(0.5)
            return state
        if here is None:  # being (re)created by the primary's rbd-mirror
            time.sleep(0.5)
            return state
        if there.get("primary"):
            status = here["status"]
            if self._split_brain(status):
                with rbd.Image(primary.ioctx(), name) as handle:
                    handle.mirror_image_resync()
                resynced.append(volume.id)
                time.sleep(0.5)
                return state
            if not self._caught_up(status):
                time.sleep(0.3)
                return state
            with rbd.Image(source.ioctx(), name) as handle:
                handle.mirror_image_demote()
            context["demoted_at"] = datetime.datetime.utcnow() - datetime.timedelta(seconds=1)
        # Neither side primary: promote the primary once it has replayed the demotion. The primary's
        # copy was itself demoted at the failover, so librbd would also accept a non-forced promote
        # of a copy that has not replayed anything yet: check the replay ourselves first.
        if not self._demotion_replayed(source, primary, name, context.get("demoted_at")):
            time.sleep(0.3)
            return state
        try:
            with rbd.Image(primary.ioctx(), name) as handle:
                handle.mirror_image_promote(False)
            return VolumeFailover(volume.id, ok=True, data_age_seconds=0.0)
        except rbd.Error as exc:
            LOG.debug("%s: promote on the primary not yet possible: %s", name, exc)
            time.sleep(0.3)
            return state

    @staticmethod
    def _demotion_replayed(source: ClusterClient, primary: ClusterClient, name: str,
                           demoted_at: datetime.datetime | None) -> bool:
        """The primary's copy holds everything up to the active copy's demotion.

        Snapshot mode: the primary has a complete copy of the active side's demotion snapshot. Journal
        mode: the primary's replayer stopped at the demotion (rbd-mirror stops replay there), as reported
        after the demotion was made."""
        _, rbd = bindings()
        mirror_ns = getattr(rbd, "RBD_SNAP_NAMESPACE_TYPE_MIRROR", 3)
        with rbd.Image(source.ioctx(), name, read_only=True) as handle:
            if handle.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT:
                snaps = [s for s in handle.list_snaps() if s.get("namespace") == mirror_ns]
                if not snaps:
                    return False
                last = max(snaps, key=lambda s: s["id"])
                if last.get("mirror", {}).get("state") != rbd.RBD_SNAP_MIRROR_STATE_PRIMARY_DEMOTED:
                    return False
                with rbd.Image(primary.ioctx(), name, read_only=True) as copy:
                    return any(s.get("namespace") == mirror_ns and s.get("mirror", {}).get("complete")
                               and s.get("mirror", {}).get("primary_snap_id") == last["id"]
                               for s in copy.list_snaps())
        with rbd.Image(primary.ioctx(), name, read_only=True) as copy:
            status = copy.mirror_image_get_status()
        if status.get("state") != rbd.MIRROR_IMAGE_STATUS_STATE_STOPPED:
            return False
        updated = status.get("last_update")
        return demoted_at is None or (isinstance(updated, datetime.datetime) and updated >= demoted_at)

    @staticmethod
    def _split_brain(status: Mapping[str, Any]) -> bool:
        return "split-brain" in str(status.get("description") or "")

    @staticmethod
    def _caught_up(status: Mapping[str, Any]) -> bool:
        """The non-primary copy finished bootstrapping and replays. Whether it holds everything is
        left to the non-forced promote, which librbd refuses until the demotion has been replayed
        (rbd-mirror refreshes the status description only every 30 s, its state at once)."""
        _, rbd = bindings()
        return bool(status.get("state") == rbd.MIRROR_IMAGE_STATUS_STATE_REPLAYING)

    def freeze_backend(self) -> None:
        return None

    def thaw_backend(self) -> None:
        return None

    # -- lag -----------------------------------------------------------------------------------

    def _status_client(self, config: ClusterConfig) -> ClusterClient:
        client = self._status_clients.get(config.backend_id)
        if client is None or client.config != config:
            client = self._status_clients[config.backend_id] = ClusterClient(config, timeout=self.connect_timeout)
        return client

    def replication_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        """From rbd-mirror's status of the non-primary copies on every other site."""
        _, rbd = bindings()
        active = self.active_backend_id
        sites = [t.backend_id for t in self._targets if t.backend_id != active]
        sites += [PRIMARY_BACKEND_ID] if active else []
        now = time.time()
        states: dict[str, list[ReplicaState]] = {}
        for site in sites:
            client = self._status_client(self._config_for(site))
            try:
                statuses = list(rbd.RBD().mirror_image_status_list(client.ioctx()))
            except Exception as exc:  # noqa: BLE001 -- an unreachable site: unknown copies
                client.reset()
                LOG.warning("mirror status of %s unavailable: %s", site, exc)
                continue
            for status in statuses:
                name = str(status.get("name", ""))
                if not name.startswith("volume-") or "." in name:
                    continue
                if status.get("description") == "local image is primary":
                    continue
                last, pending, in_flight = replica_lag(status, now)
                states.setdefault(name[len("volume-"):], []).append(
                    ReplicaState(target=site, last_complete_at=last, bytes_pending=pending, in_flight=in_flight))
        return {volume_id: tuple(per) for volume_id, per in states.items()}

    def replication_update(self, volume: VolumeRef) -> ModelUpdate:
        """What to persist after enabling replication on an existing volume (retype)."""
        status, data = self.enable_replication(volume)
        return ModelUpdate(replication_status=status, replication_driver_data=data)
