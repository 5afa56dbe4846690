"""What the file driver's replication remembers: which volumes and groups replicate, which site
serves each (a small JSON file under state_path, never the database, so it survives a restart), and
how far each copy is behind (in memory, rebuilt from the copies' manifests at start)."""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from cinderblock.volume.drivers.file import replica_store as store
from cinderblock.volume.drivers.file.sites import SiteLayout

DEFAULT_INTERVAL = 60


class VolumeEntry(TypedDict):
    pool: str
    # Seconds between two copies.
    interval: int
    # The consistency group the volume replicates with (its members commit together).
    group: str | None
    # The site serving the volume when it is not the backend's (after a group failover).
    active: str | None
    created_at: float
    # The last generation sent (generations only grow on every destination).
    gen: int


Saved = tuple[dict[str, VolumeEntry], dict[str, list[str]]]


class Registry:
    """volumes: id -> VolumeEntry; groups: id -> [volume ids]. `lock` guards both."""

    def __init__(self, path: Path, layout: SiteLayout) -> None:
        self.path = path
        self.layout = layout
        self.lock = threading.RLock()
        self.volumes: dict[str, VolumeEntry] = {}
        self.groups: dict[str, list[str]] = {}
        self._volume_locks: dict[str, threading.Lock] = {}
        self._volume_locks_guard = threading.Lock()

    def load(self) -> None:
        data = store.read_json(self.path) or {}
        with self.lock:
            self.volumes = cast(dict[str, VolumeEntry], dict(data.get("volumes", {})))
            self.groups = {g: list(m) for g, m in data.get("groups", {}).items()}

    def save(self) -> None:
        with self.lock:
            payload = {"volumes": self.volumes, "groups": self.groups}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            store.write_json(self.path, payload)

    def snapshot(self) -> Saved:
        with self.lock:
            copied: Saved = json.loads(json.dumps([self.volumes, self.groups]))
            return copied[0], copied[1]

    def restore(self, saved: Saved) -> None:
        with self.lock:
            self.volumes, self.groups = saved
            self.save()

    def volume_lock(self, volume_id: str) -> threading.Lock:
        """Held while a volume's copies change (a cycle, a promotion, a removal)."""
        with self._volume_locks_guard:
            return self._volume_locks.setdefault(volume_id, threading.Lock())

    def interval(self, volume_id: str) -> float:
        entry = self.volumes.get(volume_id)
        return float(entry.get("interval", DEFAULT_INTERVAL)) if entry is not None else float(DEFAULT_INTERVAL)

    # -- sites of a volume ---------------------------------------------------------------------

    def volume_site(self, volume_id: str, driver_data: str | None = None) -> str:
        """The site serving the volume: its own (group failover), else the backend's.

        driver_data (the volume's replication_driver_data) names it for a volume the registry no
        longer holds (its group's replication was disabled while it was failed over)."""
        entry = self.volumes.get(volume_id)
        if entry is not None and entry.get("active"):
            return str(entry["active"])
        if entry is None and driver_data:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                site = json.loads(driver_data).get("active")
                if isinstance(site, str) and self.layout.is_site(site):
                    return site
        return self.layout.backend_site()

    def dest_sites(self, volume_id: str) -> list[str]:
        """The sites a volume's copies go to: every one but the one serving it."""
        if not self.layout.replicated:
            return []
        active = self.volume_site(volume_id)
        return [s for s in self.layout.sites() if s != active]

    def unit_key(self, volume_id: str) -> str:
        """A volume replicates alone, or with its group as one unit."""
        entry = self.volumes.get(volume_id)
        group = entry.get("group") if entry is not None else None
        return f"group:{group}" if group else volume_id

    def units(self) -> dict[str, list[str]]:
        units: dict[str, list[str]] = {}
        with self.lock:
            for volume_id, entry in self.volumes.items():
                key = f"group:{entry['group']}" if entry.get("group") else volume_id
                units.setdefault(key, []).append(volume_id)
        return units


@dataclass
class CopyState:
    """How far the copy of one volume on one site is behind (ReplicaState, mutable)."""

    # Wall-clock time the last complete copy holds; None: no complete copy yet.
    last_complete_at: float | None = None
    # Changed bytes not yet complete on the site (found so far, while a copy is in flight).
    bytes_pending: int = 0
    in_flight: bool = False


class CopyStates:
    """(volume id, site) -> CopyState."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], CopyState] = {}

    def get(self, volume_id: str, site: str) -> CopyState:
        """The state, or a fresh one (not remembered) when none is known."""
        return self._states.get((volume_id, site)) or CopyState()

    def ensure(self, volume_id: str, site: str) -> CopyState:
        return self._states.setdefault((volume_id, site), CopyState())

    def set(self, volume_id: str, site: str, last_complete_at: float | None) -> None:
        """The site holds a complete copy taken at last_complete_at, nothing pending."""
        self._states[(volume_id, site)] = CopyState(last_complete_at)

    def drop(self, volume_id: str, site: str) -> None:
        self._states.pop((volume_id, site), None)

