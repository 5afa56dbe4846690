"""Group types (3.11) and their group specs; admin-managed like volume types."""
from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.model.errors import Conflict, InvalidInput, NotFound
from cinderblock.model.group_states import CG_GROUP_TYPE
from cinderblock.model.records import RequestContext
from cinderblock.model.specs import check_boolean_specs


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def find_group_type(session: Session, context: RequestContext, ref: str) -> tables.GroupType:
    """By id, else by name; private types only for admins. 404 otherwise."""
    found = session.get(tables.GroupType, ref) if _is_uuid(ref) else None
    if found is None:
        found = session.scalars(select(tables.GroupType).where(tables.GroupType.name == ref)).unique().one_or_none()
    if found is None or not (found.is_public or context.is_admin):
        raise NotFound(f"Group type with name {ref} could not be found.")
    return found



SPEC_FIELD_MAX = 255  # the columns' width (Cinder's group_specs schema: keys 1-255, values up to 255)


def check_specs(specs: dict[str, str]) -> None:
    for key, value in specs.items():
        if not 1 <= len(key) <= SPEC_FIELD_MAX:
            raise InvalidInput(f"Invalid input for field/attribute group_specs. Value: {key[:60]!r}. Keys must be "
                               f"1 to {SPEC_FIELD_MAX} characters long.")
        if len(value) > SPEC_FIELD_MAX:
            raise InvalidInput(f"Invalid input for field/attribute group_specs/{key}. Value: {value[:60]!r}. "
                               f"Values must be at most {SPEC_FIELD_MAX} characters long.")

class GroupTypeService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_all(self, context: RequestContext, is_public: bool | None = None,
                name: str | None = None) -> list[tables.GroupType]:
        with self.db.read() as session:
            statement = select(tables.GroupType).order_by(tables.GroupType.created_at, tables.GroupType.id)
            if name is not None:
                statement = statement.where(tables.GroupType.name == name)
            rows = list(session.scalars(statement).unique())
        if not context.is_admin:
            return [row for row in rows if row.is_public]
        return rows if is_public is None else [row for row in rows if row.is_public == is_public]

    def get(self, context: RequestContext, ref: str) -> tables.GroupType:
        with self.db.read() as session:
            if ref == "default":  # no default_group_type option: Cinder's answer when it is unset
                raise NotFound("Default group type could not be found.")
            return find_group_type(session, context, ref)

    def create(self, name: str, description: str | None, is_public: bool, specs: dict[str, str]) -> tables.GroupType:
        check_specs(specs)
        check_boolean_specs(specs, "group spec")
        try:
            with self.db.write() as session:
                if session.scalar(select(tables.GroupType.id).where(tables.GroupType.name == name)):
                    raise Conflict(f"Group Type {name} already exists.")
                row = tables.GroupType(name=name, description=description, is_public=is_public)
                row.group_specs = [tables.GroupTypeSpec(key=k, value=v) for k, v in specs.items()]
                session.add(row)
                session.flush()
                return row
        except IntegrityError:
            raise Conflict(f"Group Type {name} already exists.") from None

    def update(self, context: RequestContext, ref: str, name: str | None, description: str | None,
               is_public: bool | None) -> tables.GroupType:
        try:
            with self.db.write() as session:
                row = find_group_type(session, context, ref)
                if name is not None and name != row.name:
                    if row.name == CG_GROUP_TYPE:
                        raise InvalidInput(f"Invalid input received: Group type {CG_GROUP_TYPE} is reserved.")
                    if session.scalar(select(tables.GroupType.id).where(tables.GroupType.name == name)):
                        raise Conflict(f"Group Type {name} already exists.")
                    row.name = name
                if description is not None:
                    row.description = description
                if is_public is not None:
                    row.is_public = is_public
                session.flush()
                return row
        except IntegrityError:
            raise Conflict(f"Group Type {name} already exists.") from None

    def delete(self, context: RequestContext, ref: str) -> None:
        with self.db.write() as session:
            row = find_group_type(session, context, ref)
            if row.name == CG_GROUP_TYPE:
                # Bug 1710937: deleting it breaks every consistency group call.
                raise InvalidInput(f"Invalid input received: Group type {CG_GROUP_TYPE} is reserved and cannot be "
                                   "deleted.")
            if session.scalar(select(exists().where(tables.Group.group_type_id == row.id))):
                raise InvalidInput(f"Invalid group type: Target group type {row.id} is still in use.")
            session.delete(row)

    # --- specs ---------------------------------------------------------------------------
    def specs(self, context: RequestContext, ref: str) -> dict[str, str]:
        return self.get(context, ref).specs()

    def set_specs(self, context: RequestContext, ref: str, specs: dict[str, str]) -> dict[str, str]:
        check_specs(specs)
        check_boolean_specs(specs, "group spec")
        with self.db.write() as session:
            row = find_group_type(session, context, ref)
            current = {spec.key: spec for spec in row.group_specs}
            for key, value in specs.items():
                if key in current:
                    current[key].value = value
                else:
                    row.group_specs.append(tables.GroupTypeSpec(key=key, value=value))
            session.flush()
            return specs

    def delete_spec(self, context: RequestContext, ref: str, key: str) -> None:
        with self.db.write() as session:
            row = find_group_type(session, context, ref)
            found = [spec for spec in row.group_specs if spec.key == key]
            if not found:
                raise NotFound(f"Group Type {row.id} has no specs with key {key}.")
            row.group_specs.remove(found[0])
