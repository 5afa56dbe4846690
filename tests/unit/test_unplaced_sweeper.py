"""The scheduler's sweeper fails creates that no volume service took in time (their message died
with a killed process), and leaves alone the ones still within time or already placed."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cinderblock.db import tables
from cinderblock.runtime.service import UnplacedSweeper
from tests.api.helpers import set_volume
from tests.conftest import Cloud


def test_sweeper_fails_only_old_unplaced_creates(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("")
    lost, recent, placed = (cloud.create_volume(1) for _ in range(3))
    old = tables.utcnow() - dt.timedelta(seconds=120)
    set_volume(cloud, lost["id"], status="creating", host=None, updated_at=old)
    set_volume(cloud, recent["id"], status="creating", host=None)
    set_volume(cloud, placed["id"], status="creating", updated_at=old)  # claimed: recovery's business

    assert UnplacedSweeper(cloud.running.core.db, max_age=60, interval=1).sweep() == 1

    def status(volume: dict[str, object]) -> str:
        return str(cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]["status"])

    assert (status(lost), status(recent), status(placed)) == ("error", "creating", "creating")
    with cloud.running.core.db.read() as session:
        assert "not placed within 60 s" in (session.get(tables.Volume, lost["id"]).error_reason or "")


def test_one_rule_fails_an_unplaced_create(make_cloud: Callable[..., Cloud]) -> None:
    """transitions.UNPLACED_CREATE, applied by db.transition.fail_unplaced_create: the embedded start-up, this
    sweeper and the scheduler's "no valid backend" all go through it (no status literal of their own)."""
    from pathlib import Path

    from cinderblock.db.transition import fail_unplaced_create

    cloud = make_cloud("")
    unplaced, placed, done = (cloud.create_volume(1) for _ in range(3))
    set_volume(cloud, unplaced["id"], status="creating", host=None)
    set_volume(cloud, placed["id"], status="creating")
    with cloud.running.core.db.write() as session:
        outcomes = [fail_unplaced_create(session, v["id"], "why") for v in (unplaced, placed, done)]
    assert outcomes == [True, False, False]
    with cloud.running.core.db.read() as session:
        row = session.get(tables.Volume, unplaced["id"])
        assert (row.status, row.error_reason) == ("error", "why")
    root = Path(__file__).resolve().parents[2] / "cinderblock"
    for module in ("runtime/embedded.py", "runtime/service.py", "scheduler/manager.py"):
        assert '"host": None}' not in (root / module).read_text(), module


def test_a_lost_create_is_scheduled_again_within_max_attempts(make_cloud: Callable[..., Cloud]) -> None:
    """Its message died between the broker read and the claim: scheduled again, not failed, while
    scheduler_max_attempts allows; failed with the reason after that."""
    from cinderblock.rpc.clients import SchedulerClient

    cloud = make_cloud("")
    lost = cloud.create_volume(1)
    with cloud.running.core.db.read() as session:
        path = session.get(tables.Volume, lost["id"]).provider_location
    from pathlib import Path

    Path(path).unlink()
    old = tables.utcnow() - dt.timedelta(seconds=120)
    set_volume(cloud, lost["id"], status="creating", host=None, provider_location=None, updated_at=old)
    sweeper = UnplacedSweeper(cloud.running.core.db, max_age=60, interval=1,
                              scheduler=SchedulerClient(cloud.running.core.transport), max_attempts=2)

    assert sweeper.sweep() == 0
    assert cloud.wait_volume(lost["id"], "available", "error")["status"] == "available"
    assert Path(path).is_file()

    set_volume(cloud, lost["id"], status="creating", host=None, updated_at=old)  # lost once more
    assert sweeper.sweep() == 1  # the second placement was its last attempt
    assert cloud.request("GET", f"/v3/volumes/{lost['id']}").json()["volume"]["status"] == "error"
