"""The one writer of states: a declared transition (model/transitions.py, model/group_transitions.py)
turned into a compare-and-swap.

    move(session, VOLUME_DELETE.claim, volume_id, values={"previous_status": status})
        UPDATE volumes SET status='deleting', previous_status=… WHERE id=… AND status IN (<from-states>)

`move` changes one row (db/cas.py), `move_all` every row a filter selects (a failover's snapshots),
`insert` adds a row in its initial state. Each refuses a state the transition does not declare
(IllegalTransition: a bug, never a user's error), and is the only code allowed to write a state
column: db/state_guard.py fails anything else under test.
"""
from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.cas import compare_and_swap
from cinderblock.db.tables import utcnow
from cinderblock.model import transitions
from cinderblock.model.machine import KEEP, Transition

TABLES: dict[str, type[Any]] = {
    "volume": tables.Volume, "snapshot": tables.Snapshot, "attachment": tables.VolumeAttachment,
    "group": tables.Group, "group_snapshot": tables.GroupSnapshot, "service": tables.Service,
}
# Every state column, by table name: what only this module writes.
STATE_COLUMNS: dict[str, frozenset[str]] = {
    "volumes": frozenset({"status", "attach_status", "migration_status", "replication_status"}),
    "snapshots": frozenset({"status"}),
    "volume_attachments": frozenset({"attach_status"}),
    "groups": frozenset({"status", "replication_status"}),
    "group_snapshots": frozenset({"status"}),
    "services": frozenset({"replication_status", "active_backend_id"}),
}
_WRITING: contextvars.ContextVar[str | None] = contextvars.ContextVar("state_writer", default=None)
# Rows `insert` made (their INSERT runs at the next flush, outside `_writing`).
_INSERTED: weakref.WeakSet[Any] = weakref.WeakSet()
_DEFAULT: Any = object()


class IllegalTransition(AssertionError):
    """A state write the declared machines do not allow: a programming error."""


def writing() -> str | None:
    """The transition being written in this thread, if any (read by db/state_guard.py)."""
    return _WRITING.get()


def inserted(row: Any) -> bool:
    return row in _INSERTED


@contextlib.contextmanager
def _writing(transition: Transition) -> Iterator[None]:
    token = _WRITING.set(f"{transition.resource}.{transition.name}")
    try:
        yield
    finally:
        _WRITING.reset(token)


def move(session: Session, transition: Transition, ident: Any, *conditions: Any, to: Any = _DEFAULT,
         expect: Mapping[str, Any] | None = None, values: Mapping[str, Any] | None = None) -> bool:
    """Row `ident` from the transition's from-states (or the subset `expect` names) to `to` (default:
    its one target), with `values` (other columns; other state columns only as declared). Whether it
    matched: False when the row is gone or in another state."""
    table = TABLES[transition.resource]
    with _writing(transition):
        return compare_and_swap(session, table, ident, _expected(transition, expect),
                                _values(transition, to, values), *conditions)


def move_all(session: Session, transition: Transition, *where: Any, to: Any = _DEFAULT,
             values: Mapping[str, Any] | None = None) -> int:
    """Every row `where` selects that is in a from-state; how many moved."""
    table = TABLES[transition.resource]
    statement = update(table.__table__).where(*where)
    if transition.from_states is not None:
        statement = statement.where(getattr(table, transition.column).in_(sorted(transition.from_states)))
    row_values = _values(transition, to, values)
    if "updated_at" not in row_values:
        row_values["updated_at"] = utcnow()
    with _writing(transition):
        result = session.execute(statement.values(**row_values))
    return int(result.rowcount)  # type: ignore[attr-defined]


def write_fields(session: Session, resource: str, ident: Any, *conditions: Any,
                 expect: Mapping[str, Any] | None = None, values: Mapping[str, Any] | None = None) -> bool:
    """A compare-and-swap of columns that are not states (a service's `frozen`); refuses state columns."""
    table = TABLES[resource]
    written = set(values or {}) & STATE_COLUMNS[table.__tablename__]
    if written:
        raise IllegalTransition(f"{resource}: {sorted(written)} are states: write them by a declared transition")
    return compare_and_swap(session, table, ident, dict(expect or {}), dict(values or {}), *conditions)


def insert(session: Session, transition: Transition, **fields: Any) -> Any:
    """A new row in the transition's initial state (`fields` name the other state columns it sets)."""
    if transition.from_states:
        raise IllegalTransition(f"{transition.resource}.{transition.name} does not create rows")
    row = TABLES[transition.resource](**_values(transition, _DEFAULT, fields))
    _INSERTED.add(row)
    session.add(row)
    return row


def fail_unplaced_create(session: Session, volume_id: str, reason: str) -> bool:
    """The one rule for a create that no scheduler will place (transitions.UNPLACED_CREATE): the
    volume goes to the create's failure state with the reason, unless something placed or changed
    it meanwhile. Used at embedded start-up, by the scheduler's sweeper and for "no valid backend"."""
    return move(session, transitions.VOLUME_CREATE.fail, volume_id, expect=transitions.UNPLACED_CREATE,
                values={"error_reason": reason[:1000]})


def _expected(transition: Transition, expect: Mapping[str, Any] | None) -> dict[str, Any]:
    expected = dict(expect or {})
    wanted = expected.get(transition.column, _DEFAULT)
    if wanted is _DEFAULT:
        if transition.from_states is not None:
            expected[transition.column] = transition.from_states
    elif transition.from_states is not None:
        named = set(wanted) if isinstance(wanted, (set, frozenset, list, tuple)) else {wanted}
        if not {str(s) for s in named} <= transition.from_states:
            raise IllegalTransition(f"{transition.resource}.{transition.name} does not start from {sorted(named)}")
    return expected


def _values(transition: Transition, to: Any, values: Mapping[str, Any] | None) -> dict[str, Any]:
    name = f"{transition.resource}.{transition.name}"
    state_columns = STATE_COLUMNS[TABLES[transition.resource].__tablename__]
    row_values = dict(values or {})
    for column in set(row_values) & state_columns:
        if column == transition.column or column not in transition.also:
            raise IllegalTransition(f"{name} does not write {column} (pass the state as `to`)")
        allowed = transition.also[column]
        if allowed is not None and _plain(row_values[column]) not in allowed:
            raise IllegalTransition(f"{name} does not set {column} to {row_values[column]!r}")
    targets = transition.to_states
    if to is _DEFAULT:
        if targets is None or KEEP in targets:
            return row_values
        if len(targets) != 1:
            raise IllegalTransition(f"{name} ends in one of {sorted(targets)}: say which")
        to = next(iter(targets))
    if isinstance(to, str) and to == KEEP:
        if targets is not None and KEEP not in targets:
            raise IllegalTransition(f"{name} must write {transition.column}")
        return row_values
    if targets is None:
        raise IllegalTransition(f"{name} leaves {transition.column} as it is")
    if isinstance(to, str):
        if str(to) not in targets:
            raise IllegalTransition(f"{name} does not end in {to!r} (only {sorted(targets)})")
    elif not transition.restores:  # a SQL expression: only a restore of previous_status
        raise IllegalTransition(f"{name} sets {transition.column} to a literal state only")
    row_values[transition.column] = _plain(to) if isinstance(to, str) else to
    return row_values


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, str) else value
