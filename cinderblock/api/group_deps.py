"""The group services the group routers use (held on the app next to ApiServices)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from cinderblock.domain.common import DomainDeps
from cinderblock.domain.group_replication import GroupReplicationService
from cinderblock.domain.group_snapshots import GroupSnapshotService
from cinderblock.domain.group_types import GroupTypeService
from cinderblock.domain.groups import GroupService


@dataclass(frozen=True)
class GroupApi:
    group_types: GroupTypeService
    groups: GroupService
    group_snapshots: GroupSnapshotService
    max_limit: int
    public_endpoint: str | None
    replication: GroupReplicationService


def build_group_api(deps: DomainDeps) -> GroupApi:
    settings = deps.settings
    return GroupApi(group_types=GroupTypeService(deps.db, getattr(settings, "default_group_type", None)),
                    groups=GroupService(deps), group_snapshots=GroupSnapshotService(deps),
                    max_limit=settings.max_limit, public_endpoint=settings.public_endpoint,
                    replication=GroupReplicationService(deps))


async def get_group_api(request: Request) -> GroupApi:
    api: GroupApi = request.app.state.group_api
    return api


GSvc = Annotated[GroupApi, Depends(get_group_api)]
