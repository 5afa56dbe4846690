"""Volume storage of the file driver: every volume is a sparse raw file `<pool dir>/volume-<id>`,
snapshots `snapshot-<id>` beside it.

Copies (snapshot, clone, create-from-snapshot, revert) reflink when the filesystem can and fall
back to a sparse copy. New content is always written under a temp name in the pool directory and
renamed into place, so a crash never leaves a half-written file under a final name; `prepare`
removes such leftovers. Paths are resolved on the site serving the volume (see sites.py).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import PoolStats, ProgressCallback, SnapshotRef, VolumeRef, no_progress
from cinderblock.volume.drivers.file import copy
from cinderblock.volume.drivers.file.sites import PRIMARY, SiteLayout
from cinderblock.volume.drivers.ratio import AUTO_RATIO_DEFAULT

LOG = logging.getLogger(__name__)

GiB = 1024**3
TMP_PREFIX = ".tmp-"
# Cinder's default when max_over_subscription_ratio is "auto" and nothing is used yet.

# (volume id, its replication_driver_data) -> the site serving the volume.
SiteOf = Callable[[str, str | None], str]


class VolumeStorage:
    """The volume and snapshot files of one backend, on the site serving each volume."""

    def __init__(self, layout: SiteLayout, site_of: SiteOf) -> None:
        self.layout = layout
        self._site_of = site_of
        # pool name -> the pool's filesystem can reflink (probed at prepare, or at the first stats)
        self.reflink: dict[str, bool] = {}

    # -- setup and capacity --------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the pools of the active site, remove temp files an interrupted copy left."""
        for pool in self.layout.site_pools():
            with os_errors(f"preparing pool {pool.name} at {pool.path}"):
                pool.path.mkdir(parents=True, exist_ok=True)
                for leftover in pool.path.glob(f"{TMP_PREFIX}*"):
                    LOG.warning("removing leftover temp file %s (interrupted copy)", leftover)
                    leftover.unlink(missing_ok=True)
                self.reflink[pool.name] = probe_reflink(pool.path)
            LOG.info("pool %s at %s: reflink %s", pool.name, pool.path,
                     "supported" if self.reflink[pool.name] else "not supported, using sparse copies")

    def check(self) -> None:
        for pool in self.layout.site_pools():
            if not pool.path.is_dir():
                raise DriverError(f"pool {pool.name}: {pool.path} is not a directory")
            if not os.access(pool.path, os.W_OK | os.X_OK):
                raise DriverError(f"pool {pool.name}: {pool.path} is not writable")

    def pool_stats(self, reserved_percentage: int, ratio: str | float) -> list[PoolStats]:
        """Capacity of every pool of the active site; ratio "auto" is computed per pool."""
        pools = []
        for pool in self.layout.site_pools():
            with os_errors(f"reading capacity of pool {pool.name}"):
                st = os.statvfs(pool.path)
                provisioned, used, count = usage(pool.path)
            if pool.name not in self.reflink:
                self.reflink[pool.name] = probe_reflink(pool.path)
            pools.append(PoolStats(
                name=pool.name,
                total_capacity_gb=round(st.f_blocks * st.f_frsize / GiB, 2),
                free_capacity_gb=round(st.f_bavail * st.f_frsize / GiB, 2),
                provisioned_capacity_gb=round(provisioned / GiB, 2),
                allocated_capacity_gb=round(provisioned / GiB, 2),
                reserved_percentage=reserved_percentage,
                max_over_subscription_ratio=ratio if isinstance(ratio, float) else auto_ratio(provisioned, used),
                thin_provisioning_support=True,
                thick_provisioning_support=False,
                # Group snapshots hold writes at the exports (consistency.py).
                capabilities={"reflink": self.reflink[pool.name], "consistent_group_snapshot_enabled": True,
                              "consistencygroup_support": True, "total_volumes": count},
            ))
        return pools

    # -- paths ---------------------------------------------------------------------------------

    def new_path(self, volume: VolumeRef) -> Path:
        return self.layout.pool_dir(self.layout.backend_site(), self.layout.pool_name(volume.pool)) / volume.name

    def _locate(self, name: str, pool: str | None, provider_location: str | None, site: str) -> Path:
        """Where an existing file is, on the site serving it: its pool, provider_location, any pool."""
        pools = self.layout.site_pools(site)
        candidates: list[Path] = []
        known = self.layout.pool(pool)
        if known:
            candidates.append(self.layout.pool_dir(site, known.name) / name)
        # On a replication target, never a primary path a stale provider_location still names.
        if provider_location and (site == PRIMARY or Path(provider_location).parent in {p.path for p in pools}):
            candidates.append(Path(provider_location))
        candidates += [p.path / name for p in pools]
        for candidate in candidates:
            if candidate.exists():
                return candidate
        return candidates[0]

    def volume_path(self, volume: VolumeRef) -> Path:
        site = self._site_of(volume.id, volume.replication_driver_data)
        return self._locate(volume.name, volume.pool, volume.provider_location, site)

    def snapshot_path(self, snapshot: SnapshotRef) -> Path:
        site = self._site_of(snapshot.volume.id, snapshot.volume.replication_driver_data)
        return self._locate(snapshot.name, snapshot.volume.pool, snapshot.provider_location, site)

    def existing_volume(self, volume: VolumeRef, what: str = "volume") -> Path:
        return _existing(self.volume_path(volume), what)

    # -- writing files safely ------------------------------------------------------------------

    def _publish(self, final: Path, fill: Callable[[str], None], replace: bool = False) -> None:
        """Run fill(temp path), flush it, then rename the temp file to final."""
        tmp = temp_name(final)
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

    @staticmethod
    def _check_fits(volume: VolumeRef, src: Path) -> None:
        if volume.size_gb * GiB < src.stat().st_size:
            raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its source {src}")

    # -- volumes and snapshots -----------------------------------------------------------------

    def create_volume(self, volume: VolumeRef) -> Path:
        path = self.new_path(volume)

        def fill(tmp: str) -> None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, volume.size_gb * GiB)  # sparse: no blocks allocated
            finally:
                os.close(fd)

        with os_errors(f"creating {path}"):
            self._publish(path, fill)
        LOG.info("created %s (%d GiB)", path, volume.size_gb)
        return path

    def delete_volume(self, volume: VolumeRef) -> Path:
        path = self.volume_path(volume)
        with os_errors(f"deleting {path}"):
            path.unlink(missing_ok=True)
        return path

    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> Path:
        path = self.existing_volume(volume)
        with os_errors(f"extending {path}"):
            if path.stat().st_size > new_size_gb * GiB:
                raise DriverError(f"cannot shrink {path} to {new_size_gb} GiB")
            os.truncate(path, new_size_gb * GiB)
        LOG.info("extended %s to %d GiB", path, new_size_gb)
        return path

    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> Path:
        src = self.existing_volume(snapshot.volume)
        final = src.parent / snapshot.name  # same filesystem as the volume: reflink works
        with os_errors(f"snapshotting {src}"):
            self._copy_into(src, final, 0, progress)
        return final

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        path = self.snapshot_path(snapshot)
        with os_errors(f"deleting {path}"):
            path.unlink(missing_ok=True)
        LOG.info("deleted %s", path)

    def create_from_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef,
                             progress: ProgressCallback = no_progress) -> Path:
        src = _existing(self.snapshot_path(snapshot), "snapshot")
        final = self.new_path(volume)
        with os_errors(f"creating {final} from {src}"):
            self._check_fits(volume, src)
            self._copy_into(src, final, volume.size_gb * GiB, progress)
        return final

    def clone_volume(self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress) -> Path:
        src = self.existing_volume(source, "source volume")
        final = self.new_path(volume)
        with os_errors(f"cloning {src} to {final}"):
            self._check_fits(volume, src)
            self._copy_into(src, final, volume.size_gb * GiB, progress)
        return final

    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> Path:
        path = self.existing_volume(volume)
        src = _existing(self.snapshot_path(snapshot), "snapshot")
        with os_errors(f"reverting {path} to {src}"):
            # Whole new file then rename: a failure leaves the volume as it was.
            self._copy_into(src, path, path.stat().st_size, no_progress, replace=True)
        LOG.info("reverted %s to %s", path, src.name)
        return path

    def list_files(self) -> tuple[dict[str, int], set[str]]:
        """(volume id -> size, snapshot ids) of the complete files in the active site's pools."""
        volumes: dict[str, int] = {}
        snapshots: set[str] = set()
        for pool in self.layout.site_pools():
            with os_errors(f"listing pool {pool.name}"), os.scandir(pool.path) as entries:
                for entry in entries:
                    # Temp files (.tmp-*) are never complete; prepare removes them.
                    if entry.name.startswith("volume-") and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):  # deleted while we scan
                            volumes[entry.name[len("volume-"):]] = entry.stat(follow_symlinks=False).st_size
                    elif entry.name.startswith("snapshot-"):
                        snapshots.add(entry.name[len("snapshot-"):])
        return volumes, snapshots


def temp_name(final: Path) -> Path:
    """A temp name beside final: never taken for a complete file, removed by prepare."""
    return final.with_name(f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DriverError(f"{what} file {path} does not exist")
    return path


@contextlib.contextmanager
def os_errors(action: str) -> Iterator[None]:
    """OSError → DriverError with what we were doing, so failures read well in the volume's record."""
    try:
        yield
    except OSError as exc:
        raise DriverError(f"{action}: {exc.strerror or exc}") from exc


def usage(pool_dir: Path) -> tuple[int, int, int]:
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


def auto_ratio(provisioned: int, used: int) -> float:
    """Cinder's 'auto' rule: 1 + provisioned/used, or the default while nothing is used yet."""
    if provisioned <= 0 or used <= 0:
        return AUTO_RATIO_DEFAULT
    return round(1 + provisioned / used, 2)


def probe_reflink(directory: Path) -> bool:
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

