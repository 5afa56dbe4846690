"""Listing with filters, sorting and marker pagination, for any table."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from cinderblock.model.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class ListQuery:
    """A parsed list request. Filters are column → value (exact), or value list (IN)."""

    filters: Mapping[str, Any]
    like_filters: Mapping[str, str]
    sort: Sequence[tuple[str, str]]  # (column, asc|desc)
    limit: int
    marker: str | None = None
    offset: int = 0
    with_count: bool = False
    # column → [(op, value)] with op in gt, gte, eq, neq, lt, lte (time filters).
    ranges: Mapping[str, Sequence[tuple[str, Any]]] = field(default_factory=dict)

    def scoped(self, **filters: Any) -> "ListQuery":
        return replace(self, filters={**self.filters, **filters})


_RANGE_OPS = {"gt": "__gt__", "gte": "__ge__", "eq": "__eq__", "neq": "__ne__", "lt": "__lt__", "lte": "__le__"}


_NO_MATCH = object()
_INT_RANGE = range(-2**31, 2**31)  # what every database's INTEGER holds


def _comparable(column: Any, value: Any) -> Any:
    """A filter value (text from a URL, or a Python literal of it) as the column's type; _NO_MATCH when no
    row can hold it. Comparing a text column with a number, or sending an integer too large for the
    column, is an error on some databases: that must not become a 500."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if python_type is str:
        return value if isinstance(value, str) else str(value)
    if python_type is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) and value in _INT_RANGE else _NO_MATCH
    return value


def apply_filters(statement: Select[Any], table: type[Any], query: ListQuery) -> Select[Any]:
    for name, value in query.filters.items():
        column = getattr(table, name)
        if isinstance(value, (list, tuple, set, frozenset)):
            values = [v for v in (_comparable(column, item) for item in value) if v is not _NO_MATCH]
            statement = statement.where(column.in_(values))
        elif value is None:
            statement = statement.where(column.is_(None))
        elif (comparable := _comparable(column, value)) is _NO_MATCH:
            statement = statement.where(false())
        else:
            statement = statement.where(column == comparable)
    for name, value in query.like_filters.items():
        statement = statement.where(getattr(table, name).like(f"%{value}%"))
    for name, conditions in query.ranges.items():
        column = getattr(table, name)
        for op, value in conditions:
            statement = statement.where(getattr(column, _RANGE_OPS[op])(value))
    return statement


def list_rows(session: Session, table: type[Any], query: ListQuery,
              base: Select[Any] | None = None) -> tuple[list[Any], int | None]:
    statement = apply_filters(base if base is not None else select(table), table, query)
    count = None
    if query.with_count:
        count = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    sort = list(query.sort)
    if "id" not in [key for key, _ in sort]:
        sort.append(("id", sort[0][1] if sort else "desc"))
    if query.marker is not None:
        marker_row = session.get(table, query.marker)
        # A marker of another project is as unknown as a missing one (isolation: no existence probe).
        scope = query.filters.get("project_id")
        if marker_row is None or (isinstance(scope, str) and getattr(marker_row, "project_id", scope) != scope):
            raise NotFound(f"Marker {query.marker} could not be found.")
        statement = statement.where(_after_marker(table, sort, marker_row))
    for key, direction in sort:
        column = getattr(table, key)
        if _nullable(table, key):
            # NULLs first ascending, last descending, on every database (they disagree by default);
            # `_after_marker` relies on this order.
            present = column.is_not(None)
            statement = statement.order_by(present.asc() if direction == "asc" else present.desc())
        statement = statement.order_by(column.asc() if direction == "asc" else column.desc())
    statement = statement.limit(query.limit).offset(query.offset)
    return list(session.scalars(statement).unique()), count


def _nullable(table: type[Any], key: str) -> bool:
    column = table.__table__.c.get(key)
    return bool(column is not None and column.nullable)


def _after_marker(table: type[Any], sort: Sequence[tuple[str, str]], marker_row: Any) -> Any:
    """Rows strictly after the marker in the sort order (keyset pagination, NULLs placed as in list_rows)."""
    clauses = []
    for index, (key, direction) in enumerate(sort):
        # `== None` renders IS NULL, so ties on NULL keys are handled too.
        equal_before = [getattr(table, k) == getattr(marker_row, k) for k, _ in sort[:index]]
        column, value = getattr(table, key), getattr(marker_row, key)
        if direction == "asc":
            beyond = column.is_not(None) if value is None else column > value
        elif value is None:
            continue  # descending, NULLs come last: nothing is beyond a NULL on this key
        else:
            beyond = or_(column < value, column.is_(None)) if _nullable(table, key) else column < value
        clauses.append(and_(*equal_before, beyond))
    if not clauses:
        raise InvalidInput("The marker cannot be used with this sort order.")
    return or_(*clauses)
