"""Compare-and-swap: the only conditional UPDATE of a row (db/transition.py writes states with it).

`compare_and_swap` issues one `UPDATE … WHERE id = :id AND col IN (…)` and reports whether it
matched. Two racing requests can never both win, on SQLite, PostgreSQL or MariaDB alike.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from cinderblock.db.tables import utcnow


def compare_and_swap(
    session: Session,
    table: type[Any],
    ident: Any,
    expected: Mapping[str, Any],
    values: Mapping[str, Any],
    *conditions: Any,
) -> bool:
    """Set `values` on row `ident` if every column in `expected` matches.

    An expected value that is a set/frozenset/list/tuple means "one of"; None means IS NULL.
    `conditions` are further SQL clauses that must hold (e.g. "has no snapshots").
    """
    # Core UPDATE on the table: the ORM's bulk-update bookkeeping costs more than the statement.
    statement = update(table.__table__).where(table.id == ident, *conditions)
    for column_name, wanted in expected.items():
        column = getattr(table, column_name)
        if wanted is None:
            statement = statement.where(column.is_(None))
        elif isinstance(wanted, (set, frozenset, list, tuple)):
            statement = statement.where(column.in_(list(_plain(wanted))))
        else:
            statement = statement.where(column == wanted)
    row_values = dict(values)
    if hasattr(table, "updated_at") and "updated_at" not in row_values:
        row_values["updated_at"] = utcnow()
    result = session.execute(statement.values(**row_values))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _plain(values: Collection[Any]) -> list[Any]:
    return [str(v) if hasattr(v, "value") else v for v in values]
