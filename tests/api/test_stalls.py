"""Work that stalls while the service keeps running (issue 12 §4): a commit whose answer the database
connection lost, and rows left transient with nothing working on them (the periodic sweep)."""
from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.model.errors import DatabaseUnavailable
from cinderblock.volume.workflows import create
from cinderblock.volume.workflows.common import WorkflowDeps
from tests.api.helpers import in_use, set_volume
from tests.api.test_recovery import file_of, row
from tests.conftest import Cloud


class AnswerLost:
    """A Database whose next write commits and then reports the connection lost: the server did the
    work, the client never heard (a connection cut between COMMIT and its answer)."""

    def __init__(self, db: Database) -> None:
        self._db, self.lost = db, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        with self._db.write() as session:
            yield session
        if self.lost == 0:
            self.lost += 1
            raise DatabaseUnavailable("The database is not reachable at the moment; try again later.")

    def transaction(self, work: Callable[[Session], Any], attempts: int = 4) -> Any:
        with self.write() as session:
            return work(session)


def test_a_create_whose_claim_answer_was_lost_goes_on(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    file_of(cloud, volume["id"]).unlink()
    set_volume(cloud, volume["id"], status="creating", host=None)  # waiting for its volume service
    manager = cloud.running.volume_services[0].manager
    flaky = AnswerLost(cloud.running.core.db)
    deps = WorkflowDeps(db=flaky, driver=manager.deps.driver, backend=manager.deps.backend,  # type: ignore[arg-type]
                        stats_changed=lambda: None, capacity_freed=lambda *_: None, locks=manager.deps.locks)

    manager._cast("create", lambda: create.create_volume(deps, volume["id"], "volumes"))

    assert flaky.lost == 1
    shown = cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]
    assert shown["status"] == "available", row(cloud, tables.Volume, volume["id"]).error_reason
    assert file_of(cloud, volume["id"]).is_file()


def test_a_create_answered_503_whose_commit_happened_leaves_nothing(cloud: Cloud) -> None:
    """The API's insert committed but the answer was lost: 503 to the client, and the row (which no
    scheduler was told about) goes away with its quota once the database answers again."""
    from cinderblock.domain.common import DomainDeps
    from cinderblock.domain.volumes import VolumeCreate, VolumeService
    from cinderblock.model.records import RequestContext
    from cinderblock.rpc.clients import SchedulerClient, VolumeClient

    core = cloud.running.core
    flaky = AnswerLost(core.db)
    service = VolumeService(DomainDeps(db=flaky, settings=core.settings,  # type: ignore[arg-type]
                                       scheduler=SchedulerClient(core.transport), volumes=VolumeClient(core.transport)))
    try:
        service.create(RequestContext("admin", "admin"), VolumeCreate(size=1, name="in-doubt"))
    except DatabaseUnavailable:
        pass
    else:
        raise AssertionError("the create did not see the lost answer")
    assert flaky.lost == 1
    deadline = time.monotonic() + 10
    while cloud.request("GET", "/v3/volumes/detail").json()["volumes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud.request("GET", "/v3/volumes/detail").json()["volumes"] == []
    assert in_use(cloud, "volumes") == 0 and in_use(cloud, "gigabytes") == 0


def test_the_periodic_sweep_settles_stale_transient_rows(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("[DEFAULT]\nperiodic_interval = 1\ntransient_state_timeout = 30\n")
    done, lost, held, fresh, doomed = (cloud.create_volume(1) for _ in range(5))
    long_ago = tables.utcnow() - dt.timedelta(minutes=5)
    file_of(cloud, lost["id"]).unlink()
    doomed_file = file_of(cloud, doomed["id"])
    for volume in (done, lost, held):
        set_volume(cloud, volume["id"], status="creating", updated_at=long_ago)
    set_volume(cloud, doomed["id"], status="deleting", updated_at=long_ago)
    set_volume(cloud, fresh["id"], status="creating")  # changed just now: not stale yet
    manager = cloud.running.volume_services[0].manager
    release = threading.Event()
    holder = threading.Thread(target=manager._cast, args=("hold", release.wait, held["id"]))
    holder.start()  # an operation of this service still works on it, however long it takes
    try:
        assert cloud.wait_volume(done["id"], "available", timeout=10)
        assert cloud.wait_volume(lost["id"], "error", timeout=10)
        cloud.wait_gone(f"/v3/volumes/{doomed['id']}")
        assert not doomed_file.exists()
        assert row(cloud, tables.Volume, lost["id"]).error_reason.startswith("settled after a stall")
        assert row(cloud, tables.Volume, held["id"]).status == "creating"
        assert row(cloud, tables.Volume, fresh["id"]).status == "creating"
    finally:
        release.set()
        holder.join()
