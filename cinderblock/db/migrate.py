"""`cinderblock db sync`: Alembic upgrade (or downgrade), then the rows every cloud needs."""
from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select

from cinderblock.db import group_tables, tables
from cinderblock.db.engine import Database

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
DEFAULT_TYPE = "__DEFAULT__"
# The group type consistency groups are made of (Cinder's default_cgsnapshot_type).
CG_GROUP_TYPE = "default_cgsnapshot_type"


def _config(db: Database) -> Config:
    config = Config(os.path.join(MIGRATIONS, "alembic.ini"))
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def sync(db: Database, revision: str = "head") -> None:
    config = _config(db)
    with db.write_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    seed(db)


def downgrade(db: Database, revision: str) -> None:
    config = _config(db)
    with db.write_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def seed(db: Database) -> None:
    """The default volume type (and the consistency-group type), as Cinder's migrations create them.

    Only the rows whose tables exist at the current revision (`db sync 0002` has no group tables).
    """
    has_groups = inspect(db.write_engine).has_table(group_tables.GroupType.__tablename__)
    with db.write() as session:
        if session.scalar(select(tables.VolumeType.id).where(tables.VolumeType.name == DEFAULT_TYPE)) is None:
            session.add(tables.VolumeType(name=DEFAULT_TYPE, description="Default Volume Type", is_public=True))
        if has_groups and session.scalar(select(group_tables.GroupType.id)
                          .where(group_tables.GroupType.name == CG_GROUP_TYPE)) is None:
            cg_type = group_tables.GroupType(name=CG_GROUP_TYPE,
                                             description="Default group type for migrating cgsnapshot",
                                             is_public=True)
            cg_type.group_specs = [group_tables.GroupTypeSpec(key="consistent_group_snapshot_enabled",
                                                              value="<is> True")]
            session.add(cg_type)
