"""The replication contract (SupportsReplication), the same for every replicating driver.

What it promises: a volume of a replicated type is copied to the target from its creation on; a
failover with the primary alive makes the target serve the same bytes, lost nothing included; the old
primary then receives the copies, and a failback brings back what was written on the target; every
replicated volume's lag is reported and is nil once a cycle has sent the last write; a failover that
cannot reach the target (or fails part way) changes nothing that matters: the primary still serves
every byte and the same failover succeeds once retried.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    FailoverResult,
    ReplicaState,
    VolumeRef,
)

if TYPE_CHECKING:
    from tests.contract.replicas import Replicas

TARGET = "site-b"
MiB = 1024**2
A = b"written-first:" + bytes(range(256)) * 16
B = b"after-the-last-cycle:" + bytes(reversed(range(256))) * 16
C = b"while-failed-over:" + bytes(range(0, 256, 3)) * 16
D = b"after-an-interrupted-failover:" + bytes(range(1, 256, 5)) * 8
# Offsets in different chunks of every driver (the fake's 64 KiB, the file driver's 1 MiB).
AT_A, AT_B, AT_C, AT_D = 0, 3 * MiB, 7 * MiB, 11 * MiB
# A failover that cannot reach its target must answer within this many seconds.
FAILOVER_BOUND = 90.0


def state_on(replicas: Replicas, volume: VolumeRef, site: str) -> ReplicaState:
    states = replicas.replication.replication_states()
    assert volume.id in states, f"no replication state for {volume.id}: {states}"
    by_site = {s.target: s for s in states[volume.id]}
    assert site in by_site, f"no state of {volume.id} on {site}: {states[volume.id]}"
    return by_site[site]


def serves(replicas: Replicas, volume: VolumeRef, *expected: tuple[int, bytes]) -> None:
    for offset, data in expected:
        assert replicas.read(volume, offset, len(data)) == data, f"{volume.id} at {offset}: not the bytes written"


def failover(replicas: Replicas, volumes: list[VolumeRef], site: str | None) -> tuple[FailoverResult, list[VolumeRef]]:
    result = replicas.replication.failover_host(volumes, site)
    assert [r.volume_id for r in result.volumes] == [v.id for v in volumes]
    assert all(r.ok and r.error is None for r in result.volumes), result
    return result, replicas.follow(volumes, [r.update for r in result.volumes])


class Bounded:
    """A call run in a thread, so that a test can give up on it (a hung call is a finding too)."""

    def __init__(self, call: Callable[[], FailoverResult], timeout: float) -> None:
        self.result: FailoverResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()
        self._thread.join(timeout)
        self.hung = self._thread.is_alive()

    def _run(self, call: Callable[[], FailoverResult]) -> None:
        try:
            self.result = call()
        except BaseException as error:  # noqa: BLE001 -- inspected by the test
            self.error = error

    def finish(self, timeout: float = 300.0) -> None:
        self._thread.join(timeout)


# -- steady state ----------------------------------------------------------------------------------

def test_declares_replication_and_reports_its_target(replicas: Replicas) -> None:
    assert [t.backend_id for t in replicas.replication.replication_targets()] == [TARGET]
    caps = replicas.driver.get_stats().capabilities
    assert caps["replication_enabled"] is True
    assert TARGET in caps["replication_targets"]
    assert set(caps["replication_targets"]) <= {TARGET, PRIMARY_BACKEND_ID}
    # The lag summary every replicating driver reports (SupportsReplication's docstring).
    assert {"replication_lag_max_seconds", "replication_bytes_pending"} <= set(caps), sorted(caps)


def test_replicated_volume_reaches_the_target_and_others_do_not(replicas: Replicas) -> None:
    volume, update = replicas.create()
    assert update.replication_status == "enabled"
    replicas.write(volume, AT_A, A)
    replicas.write(volume, AT_B, B)
    replicas.sync([volume])
    assert replicas.read_copy(TARGET, volume, AT_A, len(A)) == A
    assert replicas.read_copy(TARGET, volume, AT_B, len(B)) == B
    plain = dataclasses.replace(replicas.volume_ref(), extra_specs=dict(replicas.specs))
    assert replicas.driver.create_volume(plain).replication_status in (None, "disabled")
    replicas.volumes.append(plain)
    assert plain.id not in replicas.replication.replication_states()


# -- failover and failback -------------------------------------------------------------------------

def test_failover_serves_the_same_bytes_from_the_target(replicas: Replicas) -> None:
    volumes = [replicas.create()[0] for _ in range(2)]
    for volume in volumes:
        replicas.write(volume, AT_A, A)
    replicas.sync(volumes)
    for volume in volumes:  # never sent by a cycle: the failover's final sync must carry it
        replicas.write(volume, AT_B, B)
    result, volumes = failover(replicas, volumes, TARGET)
    assert result.active_backend_id == TARGET
    assert all(r.data_age_seconds == 0.0 for r in result.volumes), result  # the primary answered
    for volume in volumes:
        serves(replicas, volume, (AT_A, A), (AT_B, B))
        assert replicas.read_copy(TARGET, volume, AT_B, len(B)) == B
    # The target serves: what is written now is copied back to the old primary.
    replicas.write(volumes[0], AT_C, C)
    assert replicas.read_copy(TARGET, volumes[0], AT_C, len(C)) == C
    replicas.sync(volumes[:1], site=PRIMARY_BACKEND_ID)
    assert replicas.read_copy(PRIMARY_BACKEND_ID, volumes[0], AT_C, len(C)) == C


def test_failback_brings_back_what_was_written_on_the_target(replicas: Replicas) -> None:
    volumes = [replicas.create()[0] for _ in range(2)]
    for volume in volumes:
        replicas.write(volume, AT_A, A)
    replicas.sync(volumes)
    _, volumes = failover(replicas, volumes, TARGET)
    for volume in volumes:  # on the target only; the failback's resync must bring them home
        replicas.write(volume, AT_C, C)
    result, volumes = failover(replicas, volumes, PRIMARY_BACKEND_ID)
    assert result.active_backend_id is None
    for volume in volumes:
        serves(replicas, volume, (AT_A, A), (AT_C, C))
        assert replicas.read_copy(PRIMARY_BACKEND_ID, volume, AT_C, len(C)) == C
    # Replication towards the target resumes.
    replicas.write(volumes[0], AT_B, B)
    replicas.sync(volumes[:1])
    assert replicas.read_copy(TARGET, volumes[0], AT_B, len(B)) == B


def test_failover_to_an_unknown_target_or_back_when_not_failed_over_is_refused(replicas: Replicas) -> None:
    from cinderblock.model.errors import InvalidReplicationTarget

    volume, _ = replicas.create()
    replicas.write(volume, AT_A, A)
    for bad in ("nowhere", PRIMARY_BACKEND_ID):
        with pytest.raises(InvalidReplicationTarget):
            replicas.replication.failover_host([volume], bad)
    serves(replicas, volume, (AT_A, A))
    replicas.write(volume, AT_B, B)
    serves(replicas, volume, (AT_B, B))


# -- lag -------------------------------------------------------------------------------------------

def test_lag_is_reported_and_nil_after_a_cycle(replicas: Replicas) -> None:
    volume, _ = replicas.create()
    replicas.write(volume, AT_A, A)
    replicas.sync([volume])
    deadline = time.monotonic() + (replicas.sync_timeout or 0.0)
    while state_on(replicas, volume, TARGET).last_complete_at is None:  # rbd-mirror reports late
        assert time.monotonic() < deadline, f"no complete copy reported: {state_on(replicas, volume, TARGET)}"
        time.sleep(0.5)
    time.sleep(1.1)  # RBD mirror-snapshot times have a one-second resolution
    written_at = time.time()
    replicas.write(volume, AT_B, B)
    behind = state_on(replicas, volume, TARGET)
    assert behind.last_complete_at is not None and behind.last_complete_at < written_at, behind
    replicas.sync([volume])

    def caught_up() -> bool:
        state = state_on(replicas, volume, TARGET)
        return (state.last_complete_at is not None and state.last_complete_at >= written_at - 1.0
                and state.bytes_pending == 0 and not state.in_flight)

    deadline = time.monotonic() + (replicas.sync_timeout or 0.0)
    while not caught_up():
        assert time.monotonic() < deadline, f"lag not nil after a cycle: {state_on(replicas, volume, TARGET)}"
        time.sleep(0.5)
    lag = replicas.driver.get_stats().capabilities.get("replication_lag_max_seconds")
    assert lag is not None and lag < time.time() - written_at + 5.0, lag


# -- interrupted failover --------------------------------------------------------------------------

def test_failover_to_an_unreachable_target_changes_nothing_and_can_be_retried(replicas: Replicas) -> None:
    volumes = [replicas.create()[0] for _ in range(2)]
    for volume in volumes:
        replicas.write(volume, AT_A, A)
    replicas.sync(volumes)
    for volume in volumes:
        replicas.write(volume, AT_B, B)
    with replicas.target_unreachable():
        attempt = Bounded(lambda: replicas.replication.failover_host(volumes, TARGET), FAILOVER_BOUND)
    attempt.finish()
    assert not attempt.hung, (f"failover_host did not answer within {FAILOVER_BOUND:.0f} s with the target "
                              f"unreachable; once it was back the call ended with {attempt.error or attempt.result!r}")
    assert isinstance(attempt.error, DriverError), (attempt.error, attempt.result)
    for volume in volumes:  # the primary still serves every byte, and takes new writes
        serves(replicas, volume, (AT_A, A), (AT_B, B))
        replicas.write(volume, AT_D, D)
        serves(replicas, volume, (AT_D, D))
    result, volumes = failover(replicas, volumes, TARGET)
    assert result.active_backend_id == TARGET
    assert all(r.data_age_seconds == 0.0 for r in result.volumes), result
    for volume in volumes:
        serves(replicas, volume, (AT_A, A), (AT_B, B), (AT_D, D))


@pytest.mark.parametrize("replicas", ["fake", "file"], indirect=True)  # the drivers with a failure hook
def test_failover_failing_part_way_loses_nothing(replicas: Replicas) -> None:
    volumes = [replicas.create()[0] for _ in range(2)]
    for volume in volumes:
        replicas.write(volume, AT_A, A)
    replicas.sync(volumes)
    for volume in volumes:  # only the failover's final sync can carry these
        replicas.write(volume, AT_B, B)
    replicas.fail_next_failover_mid_way()
    try:
        result: FailoverResult | None = replicas.replication.failover_host(volumes, TARGET)
    except DriverError:
        result = None
    if result is None:  # refused: the primary still serves everything, and the retry succeeds
        for volume in volumes:
            serves(replicas, volume, (AT_A, A), (AT_B, B))
        result = replicas.replication.failover_host(volumes, TARGET)
    assert result.active_backend_id == TARGET
    for volume, outcome in zip(volumes, result.volumes, strict=True):
        assert outcome.ok, outcome
        moved = replicas.follow([volume], [outcome.update])[0]
        assert replicas.read(moved, AT_B, len(B)) == B, (
            f"the write made before the failover is lost (data_age_seconds={outcome.data_age_seconds}, "
            f"message={result.message!r})")
