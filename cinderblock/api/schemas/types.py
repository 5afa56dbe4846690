"""Request bodies of /types."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from cinderblock.api.schemas.common import Bool, Lenient, Name, Strict

SpecKey = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9\-_:. /]{1,255}$")]
SpecValue = Annotated[str, StringConstraints(max_length=255)]


class TypeCreate(Lenient):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
    description: Name | None = None
    extra_specs: dict[SpecKey, SpecValue] | None = None
    is_public: Bool | None = Field(default=None, alias="os-volume-type-access:is_public")


class TypeCreateBody(BaseModel):
    volume_type: TypeCreate


class TypeUpdate(Lenient):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)] | None = None
    description: Name | None = None
    is_public: Bool | None = None


class TypeUpdateBody(BaseModel):
    volume_type: TypeUpdate


class ExtraSpecsBody(BaseModel):
    extra_specs: dict[SpecKey, SpecValue]


class ProjectAccess(Strict):
    project: str
