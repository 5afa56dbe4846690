"""Where the file driver's files live: its pools, and the sites that hold a copy of every pool.

A site is the primary ("default": the configured pool directories) or a `replication_device`
(`backend_id:<id>, path:<dir>`), where pool P lives in `<path>/<P>`. One site serves the backend
(the primary until a failover); a volume failed over with its group may be served by another.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import PRIMARY_BACKEND_ID, ReplicationDevice

PRIMARY = PRIMARY_BACKEND_ID


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


class SiteLayout:
    """The pools, the replication sites and which site serves the backend (`active`, None: primary)."""

    def __init__(self, pools: Sequence[Pool]) -> None:
        self.pools = list(pools)
        self._by_name = {p.name: p for p in self.pools}
        self.devices: tuple[ReplicationDevice, ...] = ()
        self._roots: dict[str, Path] = {}
        # The target serving the backend after a failover (None: the primary).
        self.active: str | None = None

    def configure(self, devices: Sequence[ReplicationDevice]) -> None:
        """do_setup: check every target's directory (absolute, not a pool, not shared) and create it."""
        self.devices = tuple(devices)
        self._roots = {}
        pool_dirs = {os.path.realpath(p.path) for p in self.pools}
        for device in self.devices:
            raw = device.options.get("path", "")
            if not raw or not os.path.isabs(raw):
                raise DriverError(f"replication_device {device.backend_id}: 'path' must be an absolute directory")
            root = Path(os.path.normpath(raw))
            root.mkdir(parents=True, exist_ok=True)
            real = os.path.realpath(root)
            for pool in self.pools:
                mine = os.path.realpath(root / pool.name)
                if real in pool_dirs or mine in pool_dirs:
                    raise DriverError(f"replication_device {device.backend_id}: {root} is a pool directory")
            if real in {os.path.realpath(r) for r in self._roots.values()}:
                raise DriverError(f"replication_device {device.backend_id}: {root} is used by another target")
            self._roots[device.backend_id] = root
        if self.active is not None and self.active not in self._roots:
            raise DriverError(f"active backend {self.active!r} is not a configured replication_device")

    @property
    def replicated(self) -> bool:
        """Replication targets are configured."""
        return bool(self.devices)

    def sites(self) -> list[str]:
        return [PRIMARY] + [d.backend_id for d in self.devices]

    def is_site(self, site: str) -> bool:
        return site == PRIMARY or site in self._roots

    def backend_site(self) -> str:
        return self.active or PRIMARY

    def pool(self, name: str | None) -> Pool | None:
        """The pool a volume names (a full "host@backend#pool" too); None when it names none."""
        if not name:
            return None
        name = name.rsplit("#", 1)[-1]
        pool = self._by_name.get(name)
        if pool is None:
            raise DriverError(f"unknown pool {name!r} (pools: {', '.join(self._by_name)})")
        return pool

    def pool_name(self, name: str | None) -> str:
        """The pool a volume names, or the first one."""
        return (self.pool(name) or self.pools[0]).name

    def pool_dir(self, site: str, pool_name: str) -> Path:
        """Pool pool_name on site (KeyError for a pool or site this backend does not have)."""
        if site == PRIMARY:
            return self._by_name[pool_name].path
        return self._roots[site] / pool_name

    def site_dirs(self, site: str) -> list[tuple[str, Path]]:
        return [(p.name, self.pool_dir(site, p.name)) for p in self.pools]

    def site_pools(self, site: str | None = None) -> list[Pool]:
        """The pools of a site (default: the backend's active one)."""
        site = site or self.backend_site()
        return [Pool(p.name, self.pool_dir(site, p.name)) for p in self.pools]

    def reachable(self, site: str) -> bool:
        try:
            return all(d.is_dir() and os.access(d, os.R_OK | os.W_OK | os.X_OK) for _, d in self.site_dirs(site))
        except OSError:
            return False
