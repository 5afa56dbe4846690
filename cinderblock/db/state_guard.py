"""A check for tests: every write of a state column comes from db/transition.py.

`install()` hooks SQLAlchemy (every engine, every mapped table): an UPDATE that sets a state column
(db.transition.STATE_COLUMNS) while no declared transition is being written, or an INSERT of a row
with a state column set that `transition.insert` did not make, raises StatusWriteOutsideMachine and
is recorded in `violations`. Writes made by test code itself (setting a row up in a state) are let
through unless `strict()` is on: the caller is the first frame outside SQLAlchemy and the database
plumbing. tests/conftest.py installs it for the whole suite; the service never does.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine

from cinderblock.db import tables, transition

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(transition.__file__)))
# Frames that only carry a write: the caller beyond them decides whose write it is.
_CARRIERS = (os.path.join(_PACKAGE, "db", "engine.py"), os.path.join(_PACKAGE, "db", "cas.py"),
             os.path.abspath(__file__), os.sep + "sqlalchemy" + os.sep, os.sep + "contextlib.py",
             os.sep + "threading.py", "<sqlalchemy generated")
_UPDATE = re.compile(r'\s*UPDATE\s+"?(\w+)"?\s+SET\s+(.*?)(?:\s+WHERE\s|\s*$)', re.IGNORECASE | re.DOTALL)
_ASSIGNED = re.compile(r'(?:^|,)\s*"?(\w+)"?\s*=')
violations: list[str] = []
_strict = threading.local()
_installed: list[bool] = []


class StatusWriteOutsideMachine(AssertionError):
    """A state column written other than by a declared transition."""


def install() -> None:
    if _installed:
        return
    _installed.append(True)
    event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
    event.listen(tables.Base, "before_insert", _before_insert, propagate=True)


@contextlib.contextmanager
def strict() -> Iterator[None]:
    """Count the caller's own writes too (to show the guard failing on a deliberate raw write)."""
    _strict.on = True
    try:
        yield
    finally:
        _strict.on = False


def _before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                           executemany: bool) -> None:
    if transition.writing() is not None or not statement.lstrip()[:6].upper() == "UPDATE":
        return
    match = _UPDATE.match(statement)
    if match is None:
        return
    guarded = transition.STATE_COLUMNS.get(match.group(1))
    written = guarded & set(_ASSIGNED.findall(match.group(2))) if guarded else set()
    if written:
        _refuse(f"UPDATE {match.group(1)} SET {', '.join(sorted(written))}")


def _before_insert(mapper: Any, connection: Any, target: Any) -> None:
    guarded = transition.STATE_COLUMNS.get(mapper.local_table.name)
    if not guarded or transition.inserted(target):
        return
    state = inspect(target)
    written = {column for column in guarded if any(v is not None for v in state.attrs[column].history.added)}
    if written:
        _refuse(f"INSERT INTO {mapper.local_table.name} ({', '.join(sorted(written))})")


def _refuse(what: str) -> None:
    caller = _caller()
    if caller is None:
        return
    violation = f"{what} written by {caller} outside the declared state machines (db/transition.py)"
    violations.append(violation)
    raise StatusWriteOutsideMachine(violation)


def _caller() -> str | None:
    """file:line of the code that wrote, or None when it is not the package's (a test's set-up)."""
    frame = sys._getframe(2)
    while frame is not None and any(carrier in frame.f_code.co_filename for carrier in _CARRIERS):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    where = frame.f_code.co_filename
    if not where.startswith(_PACKAGE + os.sep) and not getattr(_strict, "on", False):
        return None
    return f"{os.path.relpath(where, os.path.dirname(_PACKAGE))}:{frame.f_lineno}"
