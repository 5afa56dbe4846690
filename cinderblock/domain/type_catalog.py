"""What volume types and group types share: lookup by id or name, listing, create, update and spec edits.

Each catalog names its rows and Cinder's wording for them; the checks that differ (reserved names, types in
use, which specs are valid) stay in the catalog's own module.
"""
from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import ORMOption

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.model.errors import Conflict, NotFound
from cinderblock.model.records import RequestContext

T = TypeVar("T", tables.VolumeType, tables.GroupType)
SpecRow = tables.VolumeTypeExtraSpec | tables.GroupTypeSpec


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


class TypeCatalog(Generic[T]):
    row: ClassVar[type[Any]]  # the table (VolumeType, GroupType)
    label: ClassVar[str]  # Cinder's word in messages: "Volume Type", "Group Type"
    specs_noun: ClassVar[str]  # "extra specs", "specs"
    load: ClassVar[tuple[ORMOption, ...]] = ()

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- what each catalog says ------------------------------------------------------------
    @classmethod
    def not_found(cls, ref: str) -> NotFound:
        raise NotImplementedError

    @classmethod
    def visible(cls, row: T, context: RequestContext) -> bool:
        raise NotImplementedError

    @classmethod
    def spec_items(cls, row: T) -> list[Any]:  # the row's own list (appended to, removed from)
        raise NotImplementedError

    @classmethod
    def new_spec(cls, key: str, value: str) -> SpecRow:
        raise NotImplementedError

    def check_rename(self, row: T) -> None:
        """Raises when `row` may not be renamed (a reserved type)."""

    # --- shared ----------------------------------------------------------------------------
    @classmethod
    def find(cls, session: Session, context: RequestContext, ref: str) -> T:
        """By id, or else by name; 404 when neither (or not visible to the caller)."""
        row: T | None = session.get(cls.row, ref, options=cls.load) if is_uuid(ref) else None
        if row is None:
            row = session.scalars(select(cls.row).options(*cls.load).where(cls.row.name == ref)).unique().one_or_none()
        if row is None or not cls.visible(row, context):
            raise cls.not_found(ref)
        return row

    def get(self, context: RequestContext, ref: str) -> T:
        with self.db.read() as session:
            return self.find(session, context, ref)

    def get_all(self, context: RequestContext, is_public: bool | None = None, name: str | None = None) -> list[T]:
        with self.db.read() as session:
            statement = select(self.row).order_by(self.row.created_at, self.row.id)
            if name is not None:
                statement = statement.where(self.row.name == name)
            rows: list[T] = list(session.scalars(statement).unique())
        if not context.is_admin:
            return [row for row in rows if self.visible(row, context)]
        return rows if is_public is None else [row for row in rows if row.is_public == is_public]

    def _conflict(self, name: str | None) -> Conflict:
        return Conflict(f"{self.label} {name} already exists.")

    def _insert(self, row: T) -> T:
        try:
            with self.db.write() as session:
                if session.scalar(select(self.row.id).where(self.row.name == row.name)):
                    raise self._conflict(row.name)
                session.add(row)
                session.flush()
                return row
        except IntegrityError:
            raise self._conflict(row.name) from None

    def update(self, context: RequestContext, ref: str, name: str | None, description: str | None,
               is_public: bool | None) -> T:
        try:
            with self.db.write() as session:
                row = self.find(session, context, ref)
                if name is not None and name != row.name:
                    self.check_rename(row)
                    if session.scalar(select(self.row.id).where(self.row.name == name)):
                        raise self._conflict(name)
                    row.name = name
                if description is not None:
                    row.description = description
                if is_public is not None:
                    row.is_public = is_public
                session.flush()
                return row
        except IntegrityError:
            raise self._conflict(name) from None

    def _merge_specs(self, row: T, specs: dict[str, str]) -> None:
        items = self.spec_items(row)
        current = {spec.key: spec for spec in items}
        for key, value in specs.items():
            if key in current:
                current[key].value = value
            else:
                items.append(self.new_spec(key, value))

    def _remove_spec(self, row: T, key: str) -> None:
        items = self.spec_items(row)
        found = [spec for spec in items if spec.key == key]
        if not found:
            raise NotFound(f"{self.label} {row.id} has no {self.specs_noun} with key {key}.")
        items.remove(found[0])
