"""Migration 0003 (groups) matches the tables, downgrades and upgrades again, and seeds the CG type."""
from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from cinderblock.db import migrate, tables
from cinderblock.db.engine import Database


def test_groups_migration_round_trip(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cinder.db'}")
    try:
        migrate.sync(db)
        with db.write_engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), tables.Base.metadata) == []
        with db.read() as session:
            cg_type = session.scalars(select(tables.GroupType)
                                      .where(tables.GroupType.name == migrate.CG_GROUP_TYPE)).one()
            assert cg_type.specs() == {"consistent_group_snapshot_enabled": "<is> True"}
        migrate.downgrade(db, "0002")
        migrate.sync(db)
        migrate.sync(db)  # seeding twice adds nothing
        with db.read() as session:
            assert len(session.scalars(select(tables.GroupType)).all()) == 1
    finally:
        db.dispose()
