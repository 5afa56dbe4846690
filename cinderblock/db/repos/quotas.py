"""Quota usage changes as conditional UPDATEs: racing creates can never exceed a limit."""
from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from sqlalchemy import Table, and_, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cinderblock.db.tables import Quota, QuotaUsage

USAGE = cast(Table, QuotaUsage.__table__)  # a Table: the ORM declares it as any FromClause


class UsageRefused(Exception):
    def __init__(self, resource: str, requested: int, limit: int, in_use: int) -> None:
        super().__init__(resource)
        self.resource, self.requested, self.limit, self.in_use = resource, requested, limit, in_use


def limits_of(session: Session, project_id: str) -> dict[str, int]:
    rows = session.scalars(select(Quota).where(Quota.project_id == project_id))
    return {row.resource: row.hard_limit for row in rows}


def usages_of(session: Session, project_id: str) -> dict[str, int]:
    rows = session.scalars(select(QuotaUsage).where(QuotaUsage.project_id == project_id))
    return {row.resource: row.in_use for row in rows}


class _NotEveryRow(Exception):
    """The UPDATE changed fewer rows than asked: undo it (savepoint) and look closer."""


def consume(session: Session, project_id: str, deltas: Mapping[str, int], limits: Mapping[str, int]) -> None:
    """Add deltas within limits (-1: unlimited), all or nothing.

    The usual case is ONE conditional UPDATE over the project's usage rows, each row testing its
    own limit, inside a savepoint. If it changed fewer rows than asked, the savepoint is undone:
    missing rows (a project's first use of a resource) are created and the UPDATE runs again; a
    row still refusing then means the limit is reached, and UsageRefused says which.
    """
    wanted = {resource: delta for resource, delta in deltas.items() if delta != 0}
    if not wanted:
        return
    usage = USAGE.c
    row_tests = []
    for resource, delta in wanted.items():
        limit = limits.get(resource, -1)
        if limit >= 0 and delta > 0:
            row_tests.append(and_(usage.resource == resource, usage.in_use + delta <= limit))
        else:
            row_tests.append(usage.resource == resource)
    statement = (update(USAGE)
                 .where(usage.project_id == project_id, or_(*row_tests))
                 .values(in_use=usage.in_use + case(wanted, value=usage.resource, else_=0)))
    try:
        with session.begin_nested():
            if session.execute(statement).rowcount != len(wanted):  # type: ignore[attr-defined]
                raise _NotEveryRow
        return
    except _NotEveryRow:
        pass
    in_use = dict(session.execute(select(usage.resource, usage.in_use).where(
        usage.project_id == project_id, usage.resource.in_(list(wanted)))).all())
    for resource in wanted:
        if resource not in in_use:
            _insert_zero_usage(session, project_id, resource)
            in_use[resource] = 0
    if session.execute(statement).rowcount == len(wanted):  # type: ignore[attr-defined]
        return
    for resource, delta in wanted.items():
        limit = limits.get(resource, -1)
        if limit >= 0 and delta > 0 and in_use[resource] + delta > limit:
            raise UsageRefused(resource, delta, limit, in_use[resource])
    raise UsageRefused(next(iter(wanted)), 0, -1, 0)  # pragma: no cover - a row vanished meanwhile


def _insert_zero_usage(session: Session, project_id: str, resource: str) -> None:
    try:
        with session.begin_nested():
            session.execute(insert(USAGE).values(project_id=project_id, resource=resource,
                                                               in_use=0))
    except IntegrityError:
        pass  # a racing first use created it


def release(session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
    """Give back usage in one UPDATE (a row never goes below zero)."""
    wanted = {resource: delta for resource, delta in deltas.items() if delta > 0}
    if not wanted:
        return
    usage = USAGE.c
    amount = case(wanted, value=usage.resource, else_=0)
    session.execute(update(USAGE)
                    .where(usage.project_id == project_id, usage.resource.in_(list(wanted)))
                    .values(in_use=case((usage.in_use >= amount, usage.in_use - amount), else_=0)))


def set_limit(session: Session, project_id: str, resource: str, hard_limit: int) -> None:
    row = session.scalar(select(Quota).where(Quota.project_id == project_id, Quota.resource == resource))
    if row is None:
        session.add(Quota(project_id=project_id, resource=resource, hard_limit=hard_limit))
    else:
        row.hard_limit = hard_limit


def delete_limits(session: Session, project_id: str) -> None:
    for row in session.scalars(select(Quota).where(Quota.project_id == project_id)):
        session.delete(row)
