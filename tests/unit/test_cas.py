"""db/cas.compare_and_swap against a real SQLite database."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import exists, select

from cinderblock.db import migrate, tables
from cinderblock.db.cas import compare_and_swap
from cinderblock.db.engine import Database
from cinderblock.model.states import VolumeStatus


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'cas.sqlite'}")
    migrate.sync(database)
    yield database
    database.dispose()


def add_volume(db: Database, status: str = "available", **values: object) -> str:
    with db.write() as session:
        type_id = session.scalar(select(tables.VolumeType.id))
        volume = tables.Volume(project_id="p", user_id="u", size=1, status=status, volume_type_id=type_id,
                               **values)
        session.add(volume)
        session.flush()
        return volume.id


def read(db: Database, volume_id: str) -> tables.Volume:
    with db.read() as session:
        volume = session.get(tables.Volume, volume_id)
        assert volume is not None
        return volume


def swap(db: Database, volume_id: str, expected: dict[str, object], values: dict[str, object],
         *conditions: object) -> bool:
    with db.write() as session:
        return compare_and_swap(session, tables.Volume, volume_id, expected, values, *conditions)


def test_single_value(db: Database) -> None:
    vid = add_volume(db)
    assert swap(db, vid, {"status": "available"}, {"status": "deleting"}) is True
    assert read(db, vid).status == "deleting"
    assert swap(db, vid, {"status": "available"}, {"status": "extending"}) is False
    assert read(db, vid).status == "deleting"


def test_one_of_a_set_and_enum_members(db: Database) -> None:
    vid = add_volume(db, status="error")
    assert swap(db, vid, {"status": {VolumeStatus.AVAILABLE, VolumeStatus.IN_USE}}, {"status": "x"}) is False
    assert swap(db, vid, {"status": frozenset({VolumeStatus.AVAILABLE, VolumeStatus.ERROR})},
                {"status": VolumeStatus.DELETING}) is True
    assert read(db, vid).status == "deleting"
    assert swap(db, vid, {"status": ["deleting"]}, {"status": "error_deleting"}) is True
    assert swap(db, vid, {"status": ()}, {"status": "available"}) is False  # empty: nothing matches


def test_none_means_is_null(db: Database) -> None:
    vid = add_volume(db, host=None)
    assert swap(db, vid, {"host": None}, {"host": "h@b#p"}) is True
    assert swap(db, vid, {"host": None}, {"host": "other@b#p"}) is False
    assert read(db, vid).host == "h@b#p"


def test_several_columns_must_all_match(db: Database) -> None:
    vid = add_volume(db, status="in-use", attach_status="attached")
    assert swap(db, vid, {"status": "in-use", "attach_status": "detached"}, {"status": "detaching"}) is False
    assert swap(db, vid, {"status": "in-use", "attach_status": "attached"}, {"status": "detaching"}) is True


def test_extra_conditions(db: Database) -> None:
    vid = add_volume(db)
    with db.write() as session:
        session.add(tables.Snapshot(volume_id=vid, project_id="p", user_id="u", status="available", volume_size=1,
                                    progress="100%"))
    no_snapshots = ~exists(select(tables.Snapshot.id).where(tables.Snapshot.volume_id == vid))
    assert swap(db, vid, {"status": "available"}, {"status": "deleting"}, no_snapshots) is False
    assert swap(db, vid, {"status": "available"}, {"status": "deleting"}, tables.Volume.size == 1) is True


def test_only_the_named_row_changes_and_updated_at_is_set(db: Database) -> None:
    first, second = add_volume(db), add_volume(db)
    assert read(db, first).updated_at is None
    assert swap(db, first, {"status": "available"}, {"status": "error"}) is True
    assert read(db, first).updated_at is not None
    assert read(db, second).status == "available" and read(db, second).updated_at is None
    assert swap(db, "no-such-id", {}, {"status": "error"}) is False


def test_racing_threads_have_one_winner(db: Database) -> None:
    vid = add_volume(db)
    barrier = threading.Barrier(16)
    wins: list[bool] = []

    def run(index: int) -> None:
        barrier.wait()
        wins.append(swap(db, vid, {"status": "available"}, {"status": f"s{index}"}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 15 + [True]
