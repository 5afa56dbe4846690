"""Volume types, their extra specs and project access."""
from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.domain.type_catalog import TypeCatalog
from cinderblock.db.loading import TYPE_LOAD
from cinderblock.model.errors import Conflict, InvalidInput, InvalidState, NotFound
from cinderblock.model.records import RequestContext
from cinderblock.model.specs import check_boolean_specs, spec_is_true

DEFAULT_TYPE_NAME = "__DEFAULT__"


def _visible(volume_type: tables.VolumeType, context: RequestContext) -> bool:
    return (volume_type.is_public or context.is_admin
            or any(p.project_id == context.project_id for p in volume_type.projects))


def find_type(session: Session, context: RequestContext, ref: str) -> tables.VolumeType:
    """A type by id, or else by name; 404 when neither (or not visible to the caller)."""
    return TypeService.find(session, context, ref)


def resolve_type(session: Session, context: RequestContext, ref: str | None, default_name: str) -> tables.VolumeType:
    if ref:
        return find_type(session, context, ref)
    volume_type = session.scalars(select(tables.VolumeType).options(*TYPE_LOAD)
                                  .where(tables.VolumeType.name == default_name)).unique().one_or_none()
    if volume_type is None:
        raise NotFound(f"Default volume type {default_name} could not be found.")
    return volume_type


def _in_use(session: Session, type_id: str) -> bool:
    return bool(session.scalar(select(exists().where(tables.Volume.volume_type_id == type_id))))


class TypeService(TypeCatalog[tables.VolumeType]):
    row = tables.VolumeType
    label = "Volume Type"
    specs_noun = "extra specs"
    load = TYPE_LOAD

    def __init__(self, db: Database, default_type_name: str) -> None:
        super().__init__(db)
        self.default_type_name = default_type_name

    @classmethod
    def not_found(cls, ref: str) -> NotFound:
        return NotFound(f"Volume type {ref} could not be found.")

    @classmethod
    def visible(cls, row: tables.VolumeType, context: RequestContext) -> bool:
        return _visible(row, context)

    @classmethod
    def spec_items(cls, row: tables.VolumeType) -> list[Any]:
        return row.extra_specs

    @classmethod
    def new_spec(cls, key: str, value: str) -> tables.VolumeTypeExtraSpec:
        return tables.VolumeTypeExtraSpec(key=key, value=value)

    def check_rename(self, row: tables.VolumeType) -> None:
        if row.name == DEFAULT_TYPE_NAME:
            raise InvalidInput("Invalid input received: The default volume type cannot be renamed.")

    def get(self, context: RequestContext, ref: str) -> tables.VolumeType:
        if ref != "default":
            return super().get(context, ref)
        with self.db.read() as session:
            return resolve_type(session, context, None, self.default_type_name)

    def create(self, name: str, description: str | None, is_public: bool,
               extra_specs: dict[str, str]) -> tables.VolumeType:
        check_boolean_specs(extra_specs)
        if all(spec_is_true(extra_specs, key) for key in ("multiattach", "cacheable")):
            raise InvalidInput("Invalid input received: multiattach and cacheable cannot both be enabled.")
        volume_type = tables.VolumeType(name=name, description=description, is_public=is_public)
        volume_type.extra_specs = [tables.VolumeTypeExtraSpec(key=k, value=v) for k, v in extra_specs.items()]
        volume_type.projects = []
        return self._insert(volume_type)

    def delete(self, context: RequestContext, ref: str) -> None:
        with self.db.write() as session:
            volume_type = find_type(session, context, ref)
            if volume_type.name in (DEFAULT_TYPE_NAME, self.default_type_name):
                raise InvalidInput("Invalid input received: The default volume type cannot be deleted.")
            if _in_use(session, volume_type.id):
                raise InvalidState("Target volume type is still in use.")
            session.delete(volume_type)

    # --- extra specs ---------------------------------------------------------------------
    def _mutable(self, session: Session, context: RequestContext, ref: str) -> tables.VolumeType:
        volume_type = find_type(session, context, ref)
        if _in_use(session, volume_type.id):
            raise InvalidState("Volume Type is currently in use.")
        return volume_type

    def set_specs(self, context: RequestContext, ref: str, specs: dict[str, str]) -> dict[str, str]:
        with self.db.write() as session:
            volume_type = self._mutable(session, context, ref)
            check_boolean_specs(specs)
            merged = {**volume_type.specs(), **specs}
            if all(spec_is_true(merged, key) for key in ("multiattach", "cacheable")):
                raise InvalidInput("Invalid input received: multiattach and cacheable cannot both be enabled.")
            self._merge_specs(volume_type, specs)
            session.flush()
            return specs

    def delete_spec(self, context: RequestContext, ref: str, key: str) -> None:
        with self.db.write() as session:
            self._remove_spec(self._mutable(session, context, ref), key)

    # --- access --------------------------------------------------------------------------
    def access_list(self, context: RequestContext, ref: str) -> list[tables.VolumeTypeProject]:
        with self.db.read() as session:
            volume_type = find_type(session, context, ref)
            if volume_type.is_public:
                raise NotFound(f"Volume type {ref} is public: it has no access list.")
            return list(volume_type.projects)

    def add_access(self, context: RequestContext, ref: str, project_id: str) -> None:
        with self.db.write() as session:
            volume_type = find_type(session, context, ref)
            if volume_type.is_public:
                raise InvalidInput("Invalid volume type: Type access modification is not applicable to "
                                   "public volume type.")
            if any(p.project_id == project_id for p in volume_type.projects):
                raise Conflict(f"Volume type access for {volume_type.id} / {project_id} combination "
                               f"already exists.")
            volume_type.projects.append(tables.VolumeTypeProject(project_id=project_id))

    def remove_access(self, context: RequestContext, ref: str, project_id: str) -> None:
        with self.db.write() as session:
            volume_type = find_type(session, context, ref)
            if volume_type.is_public:
                raise InvalidInput("Invalid volume type: Type access modification is not applicable to "
                                   "public volume type.")
            found = [p for p in volume_type.projects if p.project_id == project_id]
            if not found:
                raise NotFound(f"Volume type access not found for {volume_type.id} / {project_id} combination.")
            volume_type.projects.remove(found[0])
