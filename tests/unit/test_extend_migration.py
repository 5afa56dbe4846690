"""Migration 0005 (an extend's requested size) matches the tables, downgrades and upgrades again."""
from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cinderblock.db import migrate, tables
from cinderblock.db.engine import Database


def columns(db: Database) -> set[str]:
    return {column["name"] for column in inspect(db.write_engine).get_columns("volumes")}


def test_requested_size_migration_round_trip(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cinder.db'}")
    try:
        migrate.sync(db)
        assert "requested_size" in columns(db)
        with db.write_engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), tables.Base.metadata) == []
        migrate.downgrade(db, "0004")
        assert "requested_size" not in columns(db)
        migrate.sync(db)
        assert "requested_size" in columns(db)
    finally:
        db.dispose()
