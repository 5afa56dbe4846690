"""Group types (3.11) and their group specs; admin-managed like volume types."""
from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.domain.type_catalog import TypeCatalog
from cinderblock.model.errors import InvalidInput, NotFound
from cinderblock.model.group_states import CG_GROUP_TYPE
from cinderblock.model.records import RequestContext
from cinderblock.model.specs import check_boolean_specs


def find_group_type(session: Session, context: RequestContext, ref: str) -> tables.GroupType:
    """By id, else by name; private types only for admins. 404 otherwise."""
    return GroupTypeService.find(session, context, ref)


SPEC_FIELD_MAX = 255  # the columns' width (Cinder's group_specs schema: keys 1-255, values up to 255)


def check_specs(specs: dict[str, str]) -> None:
    for key, value in specs.items():
        if not 1 <= len(key) <= SPEC_FIELD_MAX:
            raise InvalidInput(f"Invalid input for field/attribute group_specs. Value: {key[:60]!r}. Keys must be "
                               f"1 to {SPEC_FIELD_MAX} characters long.")
        if len(value) > SPEC_FIELD_MAX:
            raise InvalidInput(f"Invalid input for field/attribute group_specs/{key}. Value: {value[:60]!r}. "
                               f"Values must be at most {SPEC_FIELD_MAX} characters long.")


class GroupTypeService(TypeCatalog[tables.GroupType]):
    row = tables.GroupType
    label = "Group Type"
    specs_noun = "specs"

    @classmethod
    def not_found(cls, ref: str) -> NotFound:
        return NotFound(f"Group type with name {ref} could not be found.")

    @classmethod
    def visible(cls, row: tables.GroupType, context: RequestContext) -> bool:
        return row.is_public or context.is_admin

    @classmethod
    def spec_items(cls, row: tables.GroupType) -> list[Any]:
        return row.group_specs

    @classmethod
    def new_spec(cls, key: str, value: str) -> tables.GroupTypeSpec:
        return tables.GroupTypeSpec(key=key, value=value)

    def check_rename(self, row: tables.GroupType) -> None:
        if row.name == CG_GROUP_TYPE:
            raise InvalidInput(f"Invalid input received: Group type {CG_GROUP_TYPE} is reserved.")

    def get(self, context: RequestContext, ref: str) -> tables.GroupType:
        if ref == "default":  # no default_group_type option: Cinder's answer when it is unset
            raise NotFound("Default group type could not be found.")
        return super().get(context, ref)

    def create(self, name: str, description: str | None, is_public: bool, specs: dict[str, str]) -> tables.GroupType:
        check_specs(specs)
        check_boolean_specs(specs, "group spec")
        row = tables.GroupType(name=name, description=description, is_public=is_public)
        row.group_specs = [tables.GroupTypeSpec(key=k, value=v) for k, v in specs.items()]
        return self._insert(row)

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
            self._merge_specs(self.find(session, context, ref), specs)
            session.flush()
            return specs

    def delete_spec(self, context: RequestContext, ref: str, key: str) -> None:
        with self.db.write() as session:
            self._remove_spec(self.find(session, context, ref), key)
