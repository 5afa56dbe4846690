"""Plain records shared by every layer. No I/O, nothing imported from cinderblock."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackendAddress:
    """`host@backend#pool`, the one place this triple is parsed.

    `host` is the service host, `backend` the configured backend section, `pool` one pool of it.
    """

    host: str
    backend: str | None = None
    pool: str | None = None

    @classmethod
    def parse(cls, value: str) -> "BackendAddress":
        rest, _, pool = value.partition("#")
        host, _, backend = rest.partition("@")
        return cls(host, backend or None, pool or None)

    @property
    def service_host(self) -> str:
        """`host@backend`: the volume service that owns the backend."""
        return f"{self.host}@{self.backend}" if self.backend else self.host

    def __str__(self) -> str:
        text = self.service_host
        return f"{text}#{self.pool}" if self.pool else text


@dataclass(frozen=True)
class RequestContext:
    """Who is asking. Carried from the API through RPC into the workflows."""

    user_id: str
    project_id: str
    is_admin: bool = True
    roles: tuple[str, ...] = ("admin",)
    request_id: str = ""
    # Keystone system scope ("all") of a system-scoped token; None for project tokens.
    system_scope: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "is_admin": self.is_admin,
            "roles": list(self.roles),
            "request_id": self.request_id,
            "system_scope": self.system_scope,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "RequestContext":
        return cls(
            user_id=data["user_id"],
            project_id=data["project_id"],
            is_admin=bool(data.get("is_admin", False)),
            roles=tuple(data.get("roles", ())),
            request_id=data.get("request_id", ""),
            system_scope=data.get("system_scope"),
        )


ADMIN_CONTEXT = RequestContext(user_id="cinderblock", project_id="cinderblock", is_admin=True)


@dataclass(frozen=True)
class RequestSpec:
    """What the scheduler needs to place one volume."""

    volume_id: str
    size_gb: int
    project_id: str
    volume_type_id: str | None = None
    extra_specs: dict[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    # Operations bound to an existing backend (clone, create from snapshot) name it here.
    required_backend: str | None = None
    snapshot_id: str | None = None
    source_volume_id: str | None = None
    # Pools (host@backend#pool) whose driver already failed this create (scheduler retry).
    attempted: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {**self.__dict__, "attempted": list(self.attempted)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "RequestSpec":
        return cls(**{**data, "attempted": tuple(data.get("attempted") or ())})
