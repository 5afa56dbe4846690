"""FileDriver: every volume is a sparse raw file `<pool dir>/volume-<id>`, snapshots `snapshot-<id>`.

Copies (snapshot, clone, create-from-snapshot, revert) reflink when the filesystem can and fall
back to a sparse copy. New content is always written under a temp name in the pool directory and
renamed into place, so a crash never leaves a half-written file under a final name; do_setup
removes such leftovers. Exports go through the target helper named by `target_helper`.

Replication (`replication_device = backend_id:<id>, path:<dir>`): see replication.py. Every path is
resolved on the site serving the volume (the backend's active site, or the volume's own after a
group failover), where pool P lives in `<target path>/<P>`.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from oslo_config import cfg

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    BackendStats,
    ConnectionInfo,
    Connector,
    DriverOptions,
    ModelUpdate,
    PoolStats,
    ProgressCallback,
    SnapshotRef,
    StorageListing,
    VolumeDriver,
    VolumeRef,
    no_progress,
)
from cinderblock.volume.drivers.file import copy
from cinderblock.volume.drivers.file.capabilities import parse_extra_capabilities
from cinderblock.volume.drivers.file.consistency import FileGroupSnapshots
from cinderblock.volume.drivers.file.replication import FileReplication
from cinderblock.volume.targets.base import Target, make_target

LOG = logging.getLogger(__name__)

GiB = 1024**3
TMP_PREFIX = ".tmp-"
# Cinder's default when max_over_subscription_ratio is "auto" and nothing is used yet.
AUTO_RATIO_DEFAULT = 20.0

file_opts = (
    cfg.ListOpt(
        "file_pool_paths",
        default=["volumes"],
        help="Directories holding volume files, one pool each. Entry: 'path' or 'name:path'. "
        "Relative paths are under state_path; the pool name defaults to the directory's basename.",
    ),
    cfg.StrOpt(
        "extra_capabilities",
        default="",
        help="Capabilities every pool of this backend reports besides its own, for volume types to match: "
        "'key:value,key2:value2' or a JSON object (Cinder's form). Values true/false and numbers are typed.",
    ),
)



@dataclass(frozen=True)
class Pool:
    name: str
    path: Path


def parse_pools(entries: list[str] | str, state_path: str) -> list[Pool]:
    """Parse `file_pool_paths` entries ('path' or 'name:path')."""
    if isinstance(entries, str):
        entries = entries.split(",")
    pools: list[Pool] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        name, sep, rest = entry.partition(":")
        # 'name:path' only when the part before ':' is a plain name (paths may contain ':').
        if sep and name and "/" not in name and rest:
            path_str = rest
        else:
            name, path_str = "", entry
        path = Path(path_str)
        if not path.is_absolute():
            path = Path(state_path) / path
        path = Path(os.path.normpath(path))
        pools.append(Pool(name=name or path.name, path=path))
    if not pools:
        raise DriverError("file_pool_paths is empty: configure at least one pool directory")
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise DriverError(f"file_pool_paths gives duplicate pool names: {names}")
    return pools


class FileDriver(VolumeDriver, FileGroupSnapshots, FileReplication):
    VERSION = "1.0.0"
    OPTIONS = file_opts

    def __init__(self, backend_name: str, options: DriverOptions, state_path: str) -> None:
        super().__init__(backend_name, options, state_path)
        self.pools = parse_pools(options.get("file_pool_paths") or ["volumes"], state_path)
        self._pools_by_name = {p.name: p for p in self.pools}
        self._reflink: dict[str, bool] = {}
        self._target: Target | None = None
        self._target_error: DriverError | None = None
        try:
            self._target = make_target(str(options.get("target_helper") or "local"), options)
        except DriverError as exc:  # reported by do_setup/check_for_setup_error
            self._target_error = exc
        self._extra_raw = str(options.get("extra_capabilities") or "")
        self._repl_init()

    @property
    def target(self) -> Target:
        if self._target is None:
            assert self._target_error is not None
            raise self._target_error
        return self._target

    # -- setup and stats -----------------------------------------------------------------------

    def do_setup(self) -> None:
        self.target  # noqa: B018 -- raises for an unknown target_helper
        parse_extra_capabilities(self._extra_raw)  # a typo stops this backend, not the service
        self._repl_configure()
        for pool in self._active_pools():
            with _os_errors(f"preparing pool {pool.name} at {pool.path}"):
                pool.path.mkdir(parents=True, exist_ok=True)
                for leftover in pool.path.glob(f"{TMP_PREFIX}*"):
                    LOG.warning("removing leftover temp file %s (interrupted copy)", leftover)
                    leftover.unlink(missing_ok=True)
                self._reflink[pool.name] = _probe_reflink(pool.path)
            LOG.info("pool %s at %s: reflink %s", pool.name, pool.path,
                     "supported" if self._reflink[pool.name] else "not supported, using sparse copies")
        self._repl_start()

    def check_for_setup_error(self) -> None:
        for pool in self._active_pools():
            if not pool.path.is_dir():
                raise DriverError(f"pool {pool.name}: {pool.path} is not a directory")
            if not os.access(pool.path, os.W_OK | os.X_OK):
                raise DriverError(f"pool {pool.name}: {pool.path} is not writable")
        self._ratio_setting()
        self.target.check_for_setup_error()

    def _ratio_setting(self) -> str | float:
        raw = str(self.options.get("max_over_subscription_ratio") or AUTO_RATIO_DEFAULT).strip()
        if raw.lower() == "auto":
            return "auto"
        try:
            ratio = float(raw)
        except ValueError:
            raise DriverError(f"max_over_subscription_ratio must be a number or 'auto', not {raw!r}") from None
        if ratio < 1.0:
            raise DriverError(f"max_over_subscription_ratio must be >= 1.0, not {ratio}")
        return ratio

    def get_stats(self) -> BackendStats:
        setting = self._ratio_setting()
        reserved = int(self.options.get("reserved_percentage") or 0)
        pools = []
        for pool in self._active_pools():
            with _os_errors(f"reading capacity of pool {pool.name}"):
                st = os.statvfs(pool.path)
                provisioned, used, count = _usage(pool.path)
            ratio = setting if isinstance(setting, float) else _auto_ratio(provisioned, used)
            if pool.name not in self._reflink:
                self._reflink[pool.name] = _probe_reflink(pool.path)
            pools.append(PoolStats(
                name=pool.name,
                total_capacity_gb=round(st.f_blocks * st.f_frsize / GiB, 2),
                free_capacity_gb=round(st.f_bavail * st.f_frsize / GiB, 2),
                provisioned_capacity_gb=round(provisioned / GiB, 2),
                allocated_capacity_gb=round(provisioned / GiB, 2),
                reserved_percentage=reserved,
                max_over_subscription_ratio=ratio,
                thin_provisioning_support=True,
                thick_provisioning_support=False,
                # Group snapshots hold writes at the exports (drivers/file/consistency.py).
                capabilities={"reflink": self._reflink[pool.name], "consistent_group_snapshot_enabled": True,
                              "consistencygroup_support": True, "total_volumes": count},
            ))
        return BackendStats(
            volume_backend_name=str(self.options.get("volume_backend_name") or self.backend_name),
            vendor_name="cinderblock",
            driver_version=self.VERSION,
            storage_protocol=self.target.protocol,
            pools=tuple(pools),
            capabilities={"multiattach": False, "QoS_support": False,
                          **self.replication_capabilities(),
                          **parse_extra_capabilities(self._extra_raw)},  # the admin's keys win
        )

    # -- paths ---------------------------------------------------------------------------------

    def _pool(self, name: str | None) -> Pool | None:
        if not name:
            return None
        name = name.rsplit("#", 1)[-1]  # tolerate a full "host@backend#pool"
        pool = self._pools_by_name.get(name)
        if pool is None:
            raise DriverError(f"unknown pool {name!r} (pools: {', '.join(self._pools_by_name)})")
        return pool

    def _active_pools(self, site: str | None = None) -> list[Pool]:
        """The pools of a site (default: the backend's active one): `<target path>/<pool>` on targets."""
        site = site or self._backend_site()
        return [Pool(p.name, self._site_pool_dir(site, p.name)) for p in self.pools]

    def _new_path(self, volume: VolumeRef) -> Path:
        pool = self._pool(volume.pool) or self.pools[0]
        return self._site_pool_dir(self._backend_site(), pool.name) / volume.name

    def _locate(self, name: str, pool: str | None, provider_location: str | None, site: str | None = None) -> Path:
        """Where an existing file is, on the site serving it: its pool, provider_location, any pool."""
        site = site or self._backend_site()
        pools = self._active_pools(site)
        candidates: list[Path] = []
        known = self._pool(pool)
        if known:
            candidates.append(self._site_pool_dir(site, known.name) / name)
        # On a replication target, never a primary path a stale provider_location still names.
        if provider_location and (site == PRIMARY_BACKEND_ID or Path(provider_location).parent in
                                  {p.path for p in pools}):
            candidates.append(Path(provider_location))
        candidates += [p.path / name for p in pools]
        for candidate in candidates:
            if candidate.exists():
                return candidate
        return candidates[0]

    def volume_path(self, volume: VolumeRef) -> Path:
        site = self._volume_site(volume.id, volume.replication_driver_data)
        return self._locate(volume.name, volume.pool, volume.provider_location, site)

    def snapshot_path(self, snapshot: SnapshotRef) -> Path:
        site = self._volume_site(snapshot.volume.id, snapshot.volume.replication_driver_data)
        return self._locate(snapshot.name, snapshot.volume.pool, snapshot.provider_location, site)

    def _existing(self, path: Path, what: str) -> Path:
        if not path.is_file():
            raise DriverError(f"{what} file {path} does not exist")
        return path

    # -- writing files safely ------------------------------------------------------------------

    def _publish(self, final: Path, fill: Callable[[str], None], replace: bool = False) -> None:
        """Run fill(temp path), flush it, then rename the temp file to final."""
        tmp = final.with_name(f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}")
        if not replace and final.exists():
            raise DriverError(f"{final} already exists")
        try:
            fill(str(tmp))
            copy.fsync_path(str(tmp))
            # Ids are unique and the manager serialises work per resource: no clobber race here.
            os.replace(tmp, final)
            copy.fsync_path(str(final.parent))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _copy_into(self, src: Path, final: Path, min_size: int, progress: ProgressCallback,
                   replace: bool = False) -> str:
        """Copy src to final (reflink or sparse copy), grown to min_size if src is smaller."""
        src_size = src.stat().st_size
        size = max(min_size, src_size)
        method = ""

        def fill(tmp: str) -> None:
            nonlocal method
            method = copy.clone_file(str(src), tmp, progress)
            if size > src_size:
                os.truncate(tmp, size)
            os.chmod(tmp, 0o600)

        self._publish(final, fill, replace=replace)
        LOG.info("copied %s to %s by %s", src.name, final, method)
        return method

    def _check_fits(self, volume: VolumeRef, src: Path) -> None:
        if volume.size_gb * GiB < src.stat().st_size:
            raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its source {src}")

    # -- volumes -------------------------------------------------------------------------------

    def create_volume(self, volume: VolumeRef) -> ModelUpdate:
        path = self._new_path(volume)

        def fill(tmp: str) -> None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, volume.size_gb * GiB)  # sparse: no blocks allocated
            finally:
                os.close(fd)

        with _os_errors(f"creating {path}"):
            self._publish(path, fill)
        LOG.info("created %s (%d GiB)", path, volume.size_gb)
        return self._replicate_new(volume, ModelUpdate(provider_location=str(path)))

    def delete_volume(self, volume: VolumeRef) -> None:
        self.target.remove_export(volume.id)
        path = self.volume_path(volume)
        with _os_errors(f"deleting {path}"):
            path.unlink(missing_ok=True)
            self._forget(volume.id, volume.pool)  # and its copies on every replication site
        LOG.info("deleted %s", path)

    def volume_exists(self, volume: VolumeRef) -> bool:
        return self.volume_path(volume).is_file()

    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> None:
        path = self._existing(self.volume_path(volume), "volume")
        with _os_errors(f"extending {path}"):
            if path.stat().st_size > new_size_gb * GiB:
                raise DriverError(f"cannot shrink {path} to {new_size_gb} GiB")
            os.truncate(path, new_size_gb * GiB)
        self.target.refresh_export(volume.id, str(path))  # tgtd caches the old size
        LOG.info("extended %s to %d GiB", path, new_size_gb)

    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> ModelUpdate:
        src = self._existing(self.volume_path(snapshot.volume), "volume")
        final = src.parent / snapshot.name  # same filesystem as the volume: reflink works
        with _os_errors(f"snapshotting {src}"):
            self._copy_into(src, final, 0, progress)
        return ModelUpdate(provider_location=str(final))

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        path = self.snapshot_path(snapshot)
        with _os_errors(f"deleting {path}"):
            path.unlink(missing_ok=True)
        LOG.info("deleted %s", path)

    def create_volume_from_snapshot(
        self, volume: VolumeRef, snapshot: SnapshotRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        src = self._existing(self.snapshot_path(snapshot), "snapshot")
        final = self._new_path(volume)
        with _os_errors(f"creating {final} from {src}"):
            self._check_fits(volume, src)
            self._copy_into(src, final, volume.size_gb * GiB, progress)
        return self._replicate_new(volume, ModelUpdate(provider_location=str(final)))

    def create_cloned_volume(
        self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        src = self._existing(self.volume_path(source), "source volume")
        final = self._new_path(volume)
        with _os_errors(f"cloning {src} to {final}"):
            self._check_fits(volume, src)
            self._copy_into(src, final, volume.size_gb * GiB, progress)
        return self._replicate_new(volume, ModelUpdate(provider_location=str(final)))

    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        path = self._existing(self.volume_path(volume), "volume")
        src = self._existing(self.snapshot_path(snapshot), "snapshot")
        with _os_errors(f"reverting {path} to {src}"):
            # Whole new file then rename: a failure leaves the volume as it was.
            self._copy_into(src, path, path.stat().st_size, no_progress, replace=True)
        self.target.refresh_export(volume.id, str(path))  # tgtd still holds the old inode
        LOG.info("reverted %s to %s", path, src.name)

    # -- exports -------------------------------------------------------------------------------

    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        path = self._existing(self.volume_path(volume), "volume")
        auth = self.target.ensure_export(volume.id, str(path), volume.size_gb, volume.provider_auth)
        return ModelUpdate(provider_auth=auth)

    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        path = self._existing(self.volume_path(volume), "volume")
        return self.target.initialize_connection(volume.id, str(path), volume.provider_auth, connector)

    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        # Exports are per volume with an ACL of ALL (like Cinder's tgt): nothing per connector.
        return None

    def remove_export(self, volume: VolumeRef) -> None:
        self.target.remove_export(volume.id)

    def export_exists(self, volume: VolumeRef) -> bool:
        return self.target.export_exists(volume.id)

    def list_storage(self) -> StorageListing:
        volumes: dict[str, int] = {}
        snapshots: set[str] = set()
        for pool in self._active_pools():
            with _os_errors(f"listing pool {pool.name}"), os.scandir(pool.path) as entries:
                for entry in entries:
                    # Temp files (.tmp-*) are never complete; do_setup removes them.
                    if entry.name.startswith("volume-") and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):  # deleted while we scan
                            volumes[entry.name[len("volume-"):]] = entry.stat(follow_symlinks=False).st_size
                    elif entry.name.startswith("snapshot-"):
                        snapshots.add(entry.name[len("snapshot-"):])
        for volume_id, entry in list(self._registry.volumes.items()):  # group members served elsewhere
            if entry.get("active") and entry["active"] != self._backend_site():
                with contextlib.suppress(OSError, KeyError):
                    path = self._site_pool_dir(entry["active"], entry["pool"]) / f"volume-{volume_id}"
                    volumes[volume_id] = path.stat().st_size
        return StorageListing(volumes=volumes, snapshots=frozenset(snapshots), exports=self.target.list_exports())


@contextlib.contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """OSError → DriverError with what we were doing, so failures read well in the volume's record."""
    try:
        yield
    except OSError as exc:
        raise DriverError(f"{action}: {exc.strerror or exc}") from exc


def _usage(pool_dir: Path) -> tuple[int, int, int]:
    """(apparent bytes of volume files, allocated bytes of volume and snapshot files, volume files)."""
    provisioned = used = count = 0
    with os.scandir(pool_dir) as entries:
        for entry in entries:
            if not entry.name.startswith(("volume-", "snapshot-")):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted while we scan
                continue
            if entry.name.startswith("volume-"):
                provisioned += st.st_size
                count += 1
            used += st.st_blocks * 512
    return provisioned, used, count


def _auto_ratio(provisioned: int, used: int) -> float:
    """Cinder's 'auto' rule: 1 + provisioned/used, or the default while nothing is used yet."""
    if provisioned <= 0 or used <= 0:
        return AUTO_RATIO_DEFAULT
    return round(1 + provisioned / used, 2)


def _probe_reflink(directory: Path) -> bool:
    """Try FICLONE between two small temp files in directory."""
    token = uuid.uuid4().hex[:8]
    src = directory / f"{TMP_PREFIX}probe-src-{token}"
    dst = directory / f"{TMP_PREFIX}probe-dst-{token}"
    try:
        src.write_bytes(b"\0" * 4096)
        return copy.reflink(str(src), str(dst))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.ENOSPC):
            return False
        raise
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)
