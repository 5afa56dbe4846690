"""The file driver's replication collaborators on their own, on real files in a tmp dir: the
registry (registry.py), one cycle (cycle.py's Sender), the replicator (replication.py) and failover
(failover.py), wired by hand as the driver wires them, without the driver."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cinderblock.model.errors import InvalidReplicationTarget
from cinderblock.volume.driver import ReplicationDevice, VolumeRef
from cinderblock.volume.drivers.file import replica_store as store
from cinderblock.volume.drivers.file.consistency import WriteBarrier
from cinderblock.volume.drivers.file.cycle import InjectedFault, Sender
from cinderblock.volume.drivers.file.failover import FINAL_SYNC_ATTEMPTS, Failover
from cinderblock.volume.drivers.file.registry import CopyStates, Registry
from cinderblock.volume.drivers.file.replication import Replicator
from cinderblock.volume.drivers.file.sites import PRIMARY, SiteLayout, parse_pools
from cinderblock.volume.drivers.file.storage import probe_reflink
from cinderblock.volume.targets.local import LocalTarget

MiB = 1024**2
REPLICATED = {"replication_enabled": "<is> True"}


@dataclass
class Parts:
    tmp: Path
    layout: SiteLayout
    registry: Registry
    states: CopyStates
    sender: Sender
    replicator: Replicator
    failover: Failover

    def primary(self, volume_id: str) -> Path:
        return self.tmp / "p" / f"volume-{volume_id}"

    def copy(self, site: str, volume_id: str) -> Path:
        return self.tmp / site / "p" / f"volume-{volume_id}"

    def volume(self, volume_id: str, data: bytes = b"") -> VolumeRef:
        """A volume file made by hand (storage is not part of this), registered for replication."""
        path = self.primary(volume_id)
        with open(path, "wb") as f:
            f.truncate(8 * MiB)
            f.write(data)
        volume = VolumeRef(id=volume_id, size_gb=1, pool="p", extra_specs=REPLICATED)
        self.replicator.register(volume)
        return volume


def build(tmp: Path, active: str | None = None) -> Parts:
    layout = SiteLayout(parse_pools([f"p:{tmp / 'p'}"], str(tmp)))
    layout.active = active
    layout.configure([ReplicationDevice(site, {"path": str(tmp / site)}) for site in ("b", "c")])
    for site in layout.sites():
        for _, directory in layout.site_dirs(site):
            directory.mkdir(parents=True, exist_ok=True)
    registry = Registry(tmp / "state" / "registry.json", layout)
    states = CopyStates()
    target = LocalTarget({})
    sender = Sender(layout, registry, states, WriteBarrier(target))
    replicator = Replicator("unit", layout, registry, states, sender, default_interval=3600)
    failover = Failover("unit", layout, registry, states, replicator, target)
    replicator.start(probe_reflink)
    return Parts(tmp, layout, registry, states, sender, replicator, failover)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    built = build(tmp_path)
    yield built
    built.replicator.stop()


def test_registry_remembers_volumes_groups_and_sites(tmp_path: Path) -> None:
    layout = SiteLayout(parse_pools([f"p:{tmp_path / 'p'}"], str(tmp_path)))
    layout.configure([ReplicationDevice("b", {"path": str(tmp_path / "b")})])
    registry = Registry(tmp_path / "r.json", layout)
    registry.volumes["v"] = {"pool": "p", "interval": 5, "group": "g", "active": None, "created_at": 1.0, "gen": 3}
    registry.volumes["w"] = {"pool": "p", "interval": 9, "group": "g", "active": "b", "created_at": 1.0, "gen": 0}
    registry.groups["g"] = ["v", "w"]
    saved = registry.snapshot()
    registry.save()
    registry.volumes["v"]["gen"] = 99
    again = Registry(tmp_path / "r.json", layout)
    again.load()
    assert again.volumes["v"]["gen"] == 3 and again.groups == {"g": ["v", "w"]}
    assert again.units() == {"group:g": ["v", "w"]} and again.unit_key("v") == "group:g"
    assert again.volume_site("v") == PRIMARY and again.volume_site("w") == "b"
    assert again.dest_sites("w") == [PRIMARY] and again.interval("w") == 9.0
    # A volume the registry no longer holds is found where its driver data says.
    assert again.volume_site("gone", json.dumps({"active": "b"})) == "b"
    assert again.volume_site("gone", json.dumps({"active": "nowhere"})) == PRIMARY
    registry.restore(saved)
    assert registry.volumes["v"]["gen"] == 3


def test_a_cycle_sends_only_changed_chunks(parts: Parts) -> None:
    volume = parts.volume("v1", b"x" * (2 * MiB))
    sent = parts.replicator.replicate_now()
    assert sent == {"v1": {"b": 2 * MiB, "c": 2 * MiB}}
    for site in ("b", "c"):
        assert parts.copy(site, "v1").read_bytes() == parts.primary("v1").read_bytes()
        assert store.read_manifest(parts.tmp / site / "p", "v1") is not None
    with open(parts.primary("v1"), "r+b") as f:
        f.seek(5 * MiB)
        f.write(b"y" * 10)
    assert parts.replicator.replicate_now(["v1"]) == {"v1": {"b": MiB, "c": MiB}}
    assert parts.copy("b", volume.id).read_bytes() == parts.primary("v1").read_bytes()
    states = parts.replicator.replica_states()["v1"]
    assert [(s.target, s.bytes_pending, s.in_flight) for s in states] == [("b", 0, False), ("c", 0, False)]
    capabilities = parts.replicator.capabilities()
    assert capabilities["replication_targets"] == ["b", "c"] and capabilities["replication_bytes_pending"] == 0


def test_an_interrupted_cycle_keeps_the_last_complete_copy(parts: Parts) -> None:
    parts.volume("v1", b"a" * (3 * MiB))
    parts.replicator.replicate_now()
    before = parts.copy("b", "v1").read_bytes()
    with open(parts.primary("v1"), "r+b") as f:
        f.write(b"b" * (3 * MiB))
    parts.sender.inject_fault(after_chunks=2)
    with pytest.raises(InjectedFault):
        parts.replicator.replicate_now()
    assert parts.copy("b", "v1").read_bytes() == before
    assert not [n for n in os.listdir(parts.tmp / "b" / "p" / store.META) if n.endswith((".stage", ".prep.json"))]


def test_forget_removes_every_copy(parts: Parts) -> None:
    parts.volume("v1", b"z")
    parts.replicator.replicate_now()
    parts.replicator.forget("v1", "p")
    assert not parts.copy("b", "v1").exists() and not parts.copy("c", "v1").exists()
    assert "v1" not in parts.registry.volumes and parts.replicator.replica_states() == {}


def test_failover_and_failback_move_the_serving_site(parts: Parts) -> None:
    volume = parts.volume("v1", b"first")
    parts.replicator.replicate_now()
    with open(parts.primary("v1"), "r+b") as f:
        f.write(b"final")  # only the final sync of the failover carries this
    result = parts.failover.failover_host([volume], "b")
    assert result.active_backend_id == "b" and parts.layout.backend_site() == "b"
    (outcome,) = result.volumes
    assert outcome.ok and outcome.data_age_seconds == 0.0 and not outcome.snapshots_kept
    assert outcome.update.provider_location == str(parts.copy("b", "v1"))
    assert parts.copy("b", "v1").read_bytes()[:5] == b"final"
    with pytest.raises(InvalidReplicationTarget):
        parts.failover.failover_host([volume], "b")
    back = parts.failover.failover_host([volume], "default")
    assert back.active_backend_id is None and all(v.ok for v in back.volumes)
    assert parts.layout.backend_site() == PRIMARY


def test_failover_to_a_lost_primary_promotes_the_last_copy(parts: Parts) -> None:
    volume = parts.volume("v1", b"copied")
    parts.replicator.replicate_now()
    (parts.tmp / "p").rename(parts.tmp / "p.lost")
    result = parts.failover.failover_host([volume], None)
    (outcome,) = result.volumes
    assert result.active_backend_id == "b" and outcome.ok and outcome.data_age_seconds is not None
    assert "unreachable" in result.message
    assert parts.copy("b", "v1").read_bytes()[:6] == b"copied"


def test_a_final_sync_failing_once_is_tried_again_and_loses_nothing(parts: Parts) -> None:
    volume = parts.volume("v1", b"first")
    parts.replicator.replicate_now()
    with open(parts.primary("v1"), "r+b") as f:
        f.write(b"final")
    parts.sender.inject_fault(after_chunks=1)
    result = parts.failover.failover_host([volume], "b")
    (outcome,) = result.volumes
    assert outcome.ok and outcome.data_age_seconds == 0.0 and "no data lost" in result.message
    assert parts.copy("b", "v1").read_bytes()[:5] == b"final"


def test_a_final_sync_that_keeps_failing_leaves_the_volume_on_its_readable_primary(parts: Parts) -> None:
    volume = parts.volume("v1", b"first")
    parts.replicator.replicate_now()
    with open(parts.primary("v1"), "r+b") as f:
        f.write(b"final")  # only the final sync could carry it: the copy on b must not be promoted
    parts.sender.inject_fault(after_chunks=1, times=FINAL_SYNC_ATTEMPTS)
    result = parts.failover.failover_host([volume], "b")
    (outcome,) = result.volumes
    assert result.active_backend_id == "b" and not outcome.ok and outcome.error is not None
    assert "final sync to b failed" in outcome.error and "nothing lost" in outcome.error
    assert "did not fail over" in result.message and "no data lost" not in result.message
    assert parts.registry.volume_site("v1") == PRIMARY
    assert parts.primary("v1").read_bytes()[:5] == b"final"
    assert parts.copy("b", "v1").read_bytes()[:5] == b"first"
    # Retryable: failing back finds it on the primary already, the next failover carries every write.
    back = parts.failover.failover_host([volume], "default")
    assert back.active_backend_id is None and back.volumes[0].ok
    again = parts.failover.failover_host([volume], "b")
    assert again.volumes[0].ok and again.volumes[0].data_age_seconds == 0.0
    assert parts.copy("b", "v1").read_bytes()[:5] == b"final"


def test_group_replication_and_group_failover(parts: Parts) -> None:
    volumes = [parts.volume(f"g{i}", bytes([65 + i]) * 100) for i in range(2)]
    updates = parts.replicator.enable_group_replication("grp", volumes)
    assert [u.replication_status for u in updates] == ["enabled", "enabled"]
    assert parts.registry.units() == {"group:grp": ["g0", "g1"]}
    result = parts.failover.failover_group("grp", volumes, "c")
    assert all(v.ok for v in result.volumes) and parts.layout.backend_site() == PRIMARY
    assert [parts.registry.volume_site(v.id) for v in volumes] == ["c", "c"]
    assert parts.replicator.served_elsewhere() == {"g0": 8 * MiB, "g1": 8 * MiB}
    parts.replicator.disable_group_replication("grp", volumes)
    assert parts.registry.groups == {} and parts.registry.volume_site("g0") == "c"
