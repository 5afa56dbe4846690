"""Volume types, their extra specs and project access."""
from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.loading import TYPE_LOAD
from cinderblock.model.errors import Conflict, InvalidInput, InvalidState, NotFound
from cinderblock.model.records import RequestContext
from cinderblock.model.specs import check_boolean_specs, spec_is_true

DEFAULT_TYPE_NAME = "__DEFAULT__"


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _visible(volume_type: tables.VolumeType, context: RequestContext) -> bool:
    return (volume_type.is_public or context.is_admin
            or any(p.project_id == context.project_id for p in volume_type.projects))


def find_type(session: Session, context: RequestContext, ref: str) -> tables.VolumeType:
    """A type by id, or else by name; 404 when neither (or not visible to the caller)."""
    volume_type = session.get(tables.VolumeType, ref, options=TYPE_LOAD) if _is_uuid(ref) else None
    if volume_type is None:
        volume_type = session.scalars(select(tables.VolumeType).options(*TYPE_LOAD)
                                      .where(tables.VolumeType.name == ref)).unique().one_or_none()
    if volume_type is None or not _visible(volume_type, context):
        raise NotFound(f"Volume type {ref} could not be found.")
    return volume_type


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


class TypeService:
    def __init__(self, db: Database, default_type_name: str) -> None:
        self.db = db
        self.default_type_name = default_type_name

    def get_all(self, context: RequestContext, is_public: bool | None,
                name: str | None = None) -> list[tables.VolumeType]:
        with self.db.read() as session:
            statement = select(tables.VolumeType).order_by(tables.VolumeType.created_at, tables.VolumeType.id)
            if name is not None:
                statement = statement.where(tables.VolumeType.name == name)
            rows = list(session.scalars(statement))
        if not context.is_admin:
            return [row for row in rows if _visible(row, context)]
        if is_public is None:
            return rows
        return [row for row in rows if row.is_public == is_public]

    def get(self, context: RequestContext, ref: str) -> tables.VolumeType:
        with self.db.read() as session:
            if ref == "default":
                return resolve_type(session, context, None, self.default_type_name)
            return find_type(session, context, ref)

    def create(self, name: str, description: str | None, is_public: bool,
               extra_specs: dict[str, str]) -> tables.VolumeType:
        check_boolean_specs(extra_specs)
        if all(spec_is_true(extra_specs, key) for key in ("multiattach", "cacheable")):
            raise InvalidInput("Invalid input received: multiattach and cacheable cannot both be enabled.")
        try:
            with self.db.write() as session:
                if session.scalar(select(tables.VolumeType.id).where(tables.VolumeType.name == name)):
                    raise Conflict(f"Volume Type {name} already exists.")
                volume_type = tables.VolumeType(name=name, description=description, is_public=is_public)
                volume_type.extra_specs = [tables.VolumeTypeExtraSpec(key=k, value=v) for k, v in extra_specs.items()]
                volume_type.projects = []
                session.add(volume_type)
                session.flush()
                return volume_type
        except IntegrityError:
            raise Conflict(f"Volume Type {name} already exists.") from None

    def update(self, context: RequestContext, ref: str, name: str | None, description: str | None,
               is_public: bool | None) -> tables.VolumeType:
        try:
            with self.db.write() as session:
                volume_type = find_type(session, context, ref)
                if name is not None and name != volume_type.name:
                    if volume_type.name == DEFAULT_TYPE_NAME:
                        raise InvalidInput("Invalid input received: The default volume type cannot be renamed.")
                    if session.scalar(select(tables.VolumeType.id).where(tables.VolumeType.name == name)):
                        raise Conflict(f"Volume Type {name} already exists.")
                    volume_type.name = name
                if description is not None:
                    volume_type.description = description
                if is_public is not None:
                    volume_type.is_public = is_public
                session.flush()
                return volume_type
        except IntegrityError:
            raise Conflict(f"Volume Type {name} already exists.") from None

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
            current = {spec.key: spec for spec in volume_type.extra_specs}
            for key, value in specs.items():
                if key in current:
                    current[key].value = value
                else:
                    volume_type.extra_specs.append(tables.VolumeTypeExtraSpec(key=key, value=value))
            session.flush()
            return specs

    def delete_spec(self, context: RequestContext, ref: str, key: str) -> None:
        with self.db.write() as session:
            volume_type = self._mutable(session, context, ref)
            found = [spec for spec in volume_type.extra_specs if spec.key == key]
            if not found:
                raise NotFound(f"Volume Type {volume_type.id} has no extra specs with key {key}.")
            volume_type.extra_specs.remove(found[0])

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
