"""Request bodies of the group, group type, group snapshot, CG and cgsnapshot calls."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from cinderblock.api.actions import invalid_body
from cinderblock.api.schemas.common import Bool, Lenient, Name, Strict
from cinderblock.model.errors import InvalidInput


def body_of(model: type[BaseModel], body: Any, key: str, allow_empty: bool = False) -> Any:
    """The object under `key`, validated; a missing key is a 400 (Cinder's wording)."""
    if not isinstance(body, dict) or (key not in body and not allow_empty):
        raise InvalidInput(f"Missing required element '{key}' in request body.")
    value = body.get(key)
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as error:
        raise invalid_body(key, value, error) from None


class GroupTypeCreate(Strict):
    name: Name
    description: Name | None = None
    is_public: Bool = True
    group_specs: dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class GroupTypeUpdate(Strict):
    name: Name | None = None
    description: Name | None = None
    is_public: Bool | None = None


class GroupSpecs(Strict):
    group_specs: dict[str, str]


class GroupCreate(Strict):
    group_type: str
    volume_types: list[str]
    name: Name | None = None
    description: Name | None = None
    availability_zone: Name | None = None


class GroupUpdate(Strict):
    name: Name | None = None
    description: Name | None = None
    add_volumes: str | None = None
    remove_volumes: str | None = None


class GroupFromSrc(Strict):
    group_snapshot_id: str | None = None
    source_group_id: str | None = None
    name: Name | None = None
    description: Name | None = None


class GroupDelete(Strict):
    """`{"delete": {"delete-volumes": bool}}` (null or {} means false)."""

    delete_volumes: Bool = False

    @classmethod
    def parse(cls, value: Any) -> "GroupDelete":
        data = dict(value or {})
        if "delete-volumes" in data:
            data["delete_volumes"] = data.pop("delete-volumes")
        return cls.model_validate(data)


class ResetStatus(Strict):
    status: str


class NoArguments(Strict):
    """enable_replication, disable_replication, list_replication_targets: `{}` (or null: openstacksdk)."""


class FailoverReplication(Strict):
    allow_attached_volume: Bool = False
    secondary_backend_id: str | None = None


class GroupSnapshotCreate(Strict):
    group_id: str
    name: Name | None = None
    description: Name | None = None


class CgCreate(Lenient):
    """cinderclient also sends user_id, project_id and status: tolerated (Cinder ignores them)."""

    volume_types: str | None = None
    name: Name | None = None
    description: Name | None = None
    availability_zone: Name | None = None


class CgUpdate(Lenient):
    name: Name | None = None
    description: Name | None = None
    add_volumes: str | None = None
    remove_volumes: str | None = None


class CgFromSrc(Lenient):
    cgsnapshot_id: str | None = None
    source_cgid: str | None = None
    name: Name | None = None
    description: Name | None = None


class CgDelete(Lenient):
    force: Bool = False


class CgSnapshotCreate(Lenient):
    consistencygroup_id: str | None = None
    name: Name | None = None
    description: Name | None = None
