"""The group replication contract (SupportsGroupReplication), for every driver that declares it.

What it promises: enabling a group's replication copies its members as one set (every cycle holds
one instant of all of them); failing the group over moves its members only, with every byte, while
the rest of the backend stays where it is; failing it back brings home what was written meanwhile;
disabling stops the members' replication; a group failover to an unknown or unreachable target
changes nothing and can be retried.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    FailoverResult,
    SupportsGroupReplication,
    VolumeRef,
)
from cinderblock.volume.drivers.fake import FakeDriver
from cinderblock.volume.drivers.file.driver import FileDriver
from cinderblock.volume.drivers.rbd.driver import RBDDriver
from tests.contract.writers import SequenceWriter, decode, encode, one_instant

if TYPE_CHECKING:
    from tests.contract.replicas import Replicas

TARGET = "site-b"
MiB = 1024**2
A = b"group-first:" + bytes(range(256)) * 8
B = b"group-after-the-last-cycle:" + bytes(reversed(range(256))) * 8
C = b"group-while-failed-over:" + bytes(range(0, 256, 7)) * 8
AT_A, AT_B, AT_C, AT_SEQ = 0, 3 * MiB, 7 * MiB, 11 * MiB
CLASSES = {"fake": FakeDriver, "file": FileDriver, "rbd": RBDDriver}
DECLARING = [kind for kind, cls in CLASSES.items() if issubclass(cls, SupportsGroupReplication)]

pytestmark = pytest.mark.parametrize("replicas", DECLARING, indirect=True)


def groups(replicas: Replicas) -> SupportsGroupReplication:
    driver = replicas.driver
    assert isinstance(driver, SupportsGroupReplication)
    return driver


def group_of(replicas: Replicas, count: int = 3) -> tuple[str, list[VolumeRef]]:
    group_id = str(uuid.uuid4())
    members = [replicas.create(group_id=group_id)[0] for _ in range(count)]
    updates = groups(replicas).enable_group_replication(group_id, members)
    assert [u.replication_status for u in updates] == ["enabled"] * count
    return group_id, members


def moved(replicas: Replicas, members: list[VolumeRef], result: FailoverResult) -> list[VolumeRef]:
    assert [r.volume_id for r in result.volumes] == [m.id for m in members]
    assert all(r.ok and r.error is None for r in result.volumes), result
    return replicas.follow(members, [r.update for r in result.volumes])


def serves(replicas: Replicas, volume: VolumeRef, *expected: tuple[int, bytes]) -> None:
    for offset, data in expected:
        assert replicas.read(volume, offset, len(data)) == data, f"{volume.id} at {offset}: not the bytes written"


def test_members_replicate_as_one_set(replicas: Replicas) -> None:
    _, members = group_of(replicas)

    def write(index: int, n: int) -> None:
        replicas.write(members[index], AT_SEQ, encode(n))

    seen = []
    with SequenceWriter(len(members), write) as writer:
        for _ in range(3):
            writer.wait_past(writer.done + 20)
            replicas.sync(members)
            copies = [decode(replicas.read_copy(TARGET, m, AT_SEQ, 8)) for m in members]
            seen.append(copies)
            assert copies[0] > 0 and one_instant(copies), f"the target's copies are not one instant: {seen}"
    assert not writer.errors, writer.errors


def test_group_failover_moves_the_members_only_and_failback_brings_their_writes_home(replicas: Replicas) -> None:
    group_id, members = group_of(replicas)
    loner, _ = replicas.create()
    for volume in [*members, loner]:
        replicas.write(volume, AT_A, A)
    replicas.sync([*members, loner])
    for member in members:  # only the group failover's final sync can carry these
        replicas.write(member, AT_B, B)
    result = groups(replicas).failover_group(group_id, members, TARGET)
    assert result.active_backend_id == TARGET
    assert all(r.data_age_seconds == 0.0 for r in result.volumes), result
    members = moved(replicas, members, result)
    for member in members:
        serves(replicas, member, (AT_A, A), (AT_B, B))
        replicas.write(member, AT_C, C)
        serves(replicas, member, (AT_C, C))
    # The rest of the backend stays on the primary and keeps replicating to the target.
    serves(replicas, loner, (AT_A, A))
    replicas.write(loner, AT_B, B)
    replicas.sync([loner])
    assert replicas.read_copy(TARGET, loner, AT_B, len(B)) == B
    back = groups(replicas).failover_group(group_id, members, PRIMARY_BACKEND_ID)
    assert back.active_backend_id is None
    members = moved(replicas, members, back)
    for member in members:
        serves(replicas, member, (AT_A, A), (AT_B, B), (AT_C, C))
        assert replicas.read_copy(PRIMARY_BACKEND_ID, member, AT_C, len(C)) == C


def test_disable_stops_the_members_replication(replicas: Replicas) -> None:
    group_id, members = group_of(replicas, 2)
    loner, _ = replicas.create()
    for volume in members:
        replicas.write(volume, AT_A, A)
    replicas.sync(members)
    updates = groups(replicas).disable_group_replication(group_id, members)
    assert [u.replication_status for u in updates] == ["disabled"] * 2
    states = replicas.replication.replication_states()
    assert not {m.id for m in members} & set(states) and loner.id in states, states
    for member in members:
        replicas.write(member, AT_B, B)
    replicas.cycle(members)  # nothing replicates them any more: a cycle sends nothing
    for member in members:
        assert replicas.read_copy(TARGET, member, AT_B, len(B)) != B
        serves(replicas, member, (AT_A, A), (AT_B, B))


def test_group_failover_to_an_unknown_target_is_refused(replicas: Replicas) -> None:
    group_id, members = group_of(replicas, 2)
    for member in members:
        replicas.write(member, AT_A, A)
    with pytest.raises(InvalidReplicationTarget):
        groups(replicas).failover_group(group_id, members, "nowhere")
    for member in members:
        serves(replicas, member, (AT_A, A))


def test_group_failover_to_an_unreachable_target_changes_nothing_and_can_be_retried(replicas: Replicas) -> None:
    group_id, members = group_of(replicas, 2)
    for member in members:
        replicas.write(member, AT_A, A)
    replicas.sync(members)
    for member in members:
        replicas.write(member, AT_B, B)
    with replicas.target_unreachable(), pytest.raises(DriverError):
        groups(replicas).failover_group(group_id, members, TARGET)
    for member in members:
        serves(replicas, member, (AT_A, A), (AT_B, B))
    members = moved(replicas, members, groups(replicas).failover_group(group_id, members, TARGET))
    for member in members:
        serves(replicas, member, (AT_A, A), (AT_B, B))
