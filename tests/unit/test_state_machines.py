"""The declared state machines are the only writers of states.

Two checks: the package's source holds no state write outside db/transition.py (a static scan), and a
write made any other way at run time fails (db/state_guard.py, installed for the whole suite by
tests/conftest.py: shown here failing on deliberate raw writes).
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cinderblock.db import migrate, state_guard, tables
from cinderblock.db import transition as state
from cinderblock.db.engine import Database
from cinderblock.model import group_transitions, transitions
from cinderblock.model.machine import Machine

PACKAGE = Path(__file__).resolve().parents[2] / "cinderblock"
STATE_NAMES = frozenset().union(*state.STATE_COLUMNS.values())
TABLE_CLASSES = frozenset(table.__name__ for table in state.TABLES.values())
# The writer, and the compare-and-swap under it.
WRITERS = frozenset({"db/transition.py", "db/cas.py"})
MACHINES: list[Machine] = [transitions.VOLUMES, transitions.SNAPSHOTS, transitions.ATTACHMENTS,
                           group_transitions.GROUPS, group_transitions.GROUP_SNAPSHOTS, group_transitions.SERVICES]


def state_writes(root: Path) -> list[str]:
    """Every place in the package's source that writes a state column without db/transition.py:
    an assignment to a row's state attribute, a state in `.values(...)` of a raw UPDATE, a table row
    built with a state, a state passed to setattr, and any compare-and-swap (it used to take states)."""
    found: list[tuple[str, int, str]] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in WRITERS or relative.startswith(("db/migrations/", "devtools/", "volume/drivers/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            why = _state_write(node)
            if why:
                found.append((relative, node.lineno, why))
    return [f"{relative}:{line}: {why}" for relative, line, why in sorted(found)]


def _state_write(node: ast.AST) -> str | None:
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for element in ast.walk(target):
                if isinstance(element, ast.Attribute) and element.attr in STATE_NAMES:
                    return f"assigns .{element.attr}"
        return None
    if not isinstance(node, ast.Call):
        return None
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    keywords = {keyword.arg for keyword in node.keywords} & STATE_NAMES
    if name == "values" and keywords:
        return f"raw UPDATE sets {sorted(keywords)}"
    if name in TABLE_CLASSES and keywords:
        return f"builds a {name} with {sorted(keywords)}"
    if name == "setattr" and len(node.args) > 1 and (not isinstance(node.args[1], ast.Constant)
                                                       or node.args[1].value in STATE_NAMES):
        return "setattr of a column it cannot name"
    if name == "compare_and_swap":
        return "compare_and_swap around the declared transitions"
    return None


def test_the_package_writes_states_only_through_the_machines() -> None:
    assert state_writes(PACKAGE) == []


def test_the_scan_finds_each_kind_of_write(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "volume.status = 'error'\n"
        "session.execute(update(Volume).values(replication_status='error'))\n"
        "session.add(Snapshot(status='creating'))\n"
        "setattr(volume, key, value)\n"
        "compare_and_swap(session, Group, ident, {}, {'status': 'error'})\n")
    assert [line.split(": ", 1)[1] for line in state_writes(tmp_path)] == [
        "assigns .status", "raw UPDATE sets ['replication_status']", "builds a Snapshot with ['status']",
        "setattr of a column it cannot name", "compare_and_swap around the declared transitions"]


# --- at run time -----------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'states.sqlite'}")
    migrate.sync(database)
    yield database
    database.dispose()
    state_guard.violations.clear()  # the deliberate ones below


def _volume(db: Database) -> str:
    with db.write() as session:
        volume = state.insert(session, transitions.VOLUME_INSERT, project_id="p", user_id="u", size=1,
                              volume_type_id=session.scalar(select(tables.VolumeType.id)))
        session.flush()
        return str(volume.id)


def test_a_raw_update_of_a_status_fails(db: Database) -> None:
    volume_id = _volume(db)
    with state_guard.strict(), pytest.raises(state_guard.StatusWriteOutsideMachine, match="UPDATE volumes SET status"):
        with db.write() as session:
            session.execute(update(tables.Volume).where(tables.Volume.id == volume_id).values(status="error"))
    with state_guard.strict(), db.write() as session:  # the same change, declared
        assert state.move(session, transitions.VOLUME_CREATE.fail, volume_id)
    assert state_guard.violations == [state_guard.violations[0]]
    assert "test_state_machines.py" in state_guard.violations[0]


def test_a_raw_write_from_package_code_fails_without_strict(db: Database) -> None:
    """What the whole suite runs with: code of the package (here compiled as if it were) is caught."""
    volume_id = _volume(db)
    namespace: dict[str, object] = {}
    exec(compile("def reset(db, volume_id):\n"
                 "    with db.write() as session:\n"
                 "        session.get(tables.Volume, volume_id).status = 'error'\n",
                 str(PACKAGE / "domain" / "rogue.py"), "exec"), {"tables": tables}, namespace)
    with pytest.raises(state_guard.StatusWriteOutsideMachine, match=r"cinderblock/domain/rogue.py:\d"):
        namespace["reset"](db, volume_id)  # type: ignore[operator]
    assert len(state_guard.violations) == 1


def test_an_assigned_status_or_a_row_built_with_one_fails(db: Database) -> None:
    volume_id = _volume(db)
    with state_guard.strict(), pytest.raises(state_guard.StatusWriteOutsideMachine, match="SET attach_status"):
        with db.write() as session:
            row = session.get(tables.Volume, volume_id)
            assert row is not None
            row.attach_status = "attached"
    with state_guard.strict(), pytest.raises(state_guard.StatusWriteOutsideMachine, match="INSERT INTO snapshots"):
        with db.write() as session:
            session.add(tables.Snapshot(volume_id=volume_id, project_id="p", user_id="u", status="available",
                                        volume_size=1))
    assert len(state_guard.violations) == 2


def test_non_state_columns_are_written_freely(db: Database) -> None:
    volume_id = _volume(db)
    with state_guard.strict(), db.write() as session:
        session.execute(update(tables.Volume).where(tables.Volume.id == volume_id).values(display_name="x"))
        assert state.write_fields(session, "volume", volume_id, values={"bootable": True})
    assert state_guard.violations == []


def test_the_writer_refuses_what_is_not_declared(db: Database) -> None:
    volume_id = _volume(db)
    with db.write() as session:
        with pytest.raises(state.IllegalTransition, match="does not end in 'deleting'"):
            state.move(session, transitions.VOLUME_CREATE.fail, volume_id, to="deleting")
        with pytest.raises(state.IllegalTransition, match="does not write attach_status"):
            state.move(session, transitions.VOLUME_CREATE.fail, volume_id, values={"attach_status": "attached"})
        with pytest.raises(state.IllegalTransition, match="does not start from"):
            state.move(session, transitions.VOLUME_DELETE.claim, volume_id, expect={"status": "creating"})
        with pytest.raises(state.IllegalTransition, match="are states"):
            state.write_fields(session, "volume", volume_id, values={"status": "error"})
        # Declared, but the row is not in a from-state: no match, nothing written.
        assert state.move(session, transitions.VOLUME_DELETE.claim, volume_id) is False


# --- the tables ------------------------------------------------------------------------------

def test_every_declared_transition_is_used() -> None:
    """No dead entries: each transition or operation constant is used (named once more than declared)."""
    source = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    declared = set()
    for module in (transitions, group_transitions):
        for name, value in vars(module).items():
            if any(value is entry for machine in MACHINES
                   for entry in [*machine.transitions.values(), *machine.operations.values()]):
                declared.add(name)
    unused = sorted(name for name in declared if len(re.findall(rf"\b{name}\b", source)) < 2)
    assert unused == []


def test_every_state_column_default_is_a_declared_state() -> None:
    for machine in MACHINES:
        table = state.TABLES[machine.resource]
        assert set(machine.columns) == state.STATE_COLUMNS[table.__tablename__]
        for column_name, states in machine.columns.items():
            default = table.__table__.c[column_name].default
            if default is not None and states is not None:
                assert default.arg in states, (machine.resource, column_name)


def test_reserve_is_what_the_domain_claims() -> None:
    """The table and domain/volumes.py agree (they drifted once): the domain claims by the entry."""
    source = (PACKAGE / "domain" / "volumes.py").read_text()
    assert "t.VOLUME_RESERVE" in source and "t.VOLUME_BEGIN_DETACH" in source
    assert transitions.VOLUME_RESERVE.from_states == {"available", "in-use"}
