"""Alembic environment: the URL comes from cinderblock's settings, passed in by `db sync`."""
from __future__ import annotations

from alembic import context

from cinderblock.db.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run() -> None:
    if connection is None:
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata,
                          literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
