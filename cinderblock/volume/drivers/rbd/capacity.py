"""What the pool holds and can still hold, as the scheduler's pool stats need it."""
from __future__ import annotations

from dataclasses import dataclass

from cinderblock.model.errors import DriverError
from cinderblock.volume.drivers.ratio import AUTO_RATIO_DEFAULT, ratio_setting
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.images import Images
from cinderblock.volume.drivers.rbd.sites import Sites

GiB = 1024**3
@dataclass(frozen=True)
class Usage:
    total_gb: float
    free_gb: float
    provisioned_gb: float
    volumes: int
    ratio: float


class PoolCapacity:
    """Reads the pool's size, free space and what its volume images were given, on the active cluster."""

    def __init__(self, sites: Sites, images: Images, ratio: object) -> None:
        self.sites = sites
        self.images = images
        self._ratio = ratio  # checked by check(), at check_for_setup_error, not when the driver is built

    def check(self) -> str | float:
        return ratio_setting(self._ratio)

    def usage(self) -> Usage:
        setting = self.check()
        total, free = self._pool_bytes()
        provisioned, count = self._provisioned()
        used = max(total - free, 0.0)
        if isinstance(setting, float):
            ratio = setting
        else:  # 'auto': what the pool is over-subscribed by now
            ratio = AUTO_RATIO_DEFAULT if provisioned <= 0 or used <= 0 else round(1 + provisioned / used, 2)
        return Usage(total_gb=round(total / GiB, 2), free_gb=round(free / GiB, 2),
                     provisioned_gb=round(provisioned / GiB, 2), volumes=count, ratio=ratio)

    def _pool_bytes(self) -> tuple[float, float]:
        """(total, free) bytes of the pool: its quota if it has one, else used + what Ceph can still store."""
        pool = self.images.pool_name
        client = self.sites.client()
        df = client.mon_command({"prefix": "df", "detail": "detail"})
        stats = next((p["stats"] for p in df.get("pools", []) if p.get("name") == pool), None)
        if stats is None:
            raise DriverError(f"pool {pool!r} is not in 'ceph df'")
        used = float(stats.get("stored", stats.get("bytes_used", 0)))
        free = float(stats.get("max_avail", 0))
        quota = client.mon_command({"prefix": "osd pool get-quota", "pool": pool})
        quota_bytes = float((quota or {}).get("quota_max_bytes") or 0)
        if quota_bytes:
            return quota_bytes, max(0.0, min(free, quota_bytes - used))
        return used + free, free

    def _provisioned(self) -> tuple[int, int]:
        """(sum of volume image sizes, number of volume images)."""
        rbd = ceph.rbd()
        ioctx = self.images.ioctx()
        total = count = 0
        for name in self.images.volume_names():
            try:
                with rbd.Image(ioctx, name, read_only=True) as handle:
                    total += handle.size()
                    count += 1
            except rbd.ImageNotFound:  # deleted while we scan
                continue
        return total, count
