"""The domain services the routers use, held on the app and handed out as a dependency."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from cinderblock.api.policy import Policy
from cinderblock.config.settings import Settings
from cinderblock.domain.group_replication import GroupReplicationService
from cinderblock.domain.group_snapshots import GroupSnapshotService
from cinderblock.domain.group_types import GroupTypeService
from cinderblock.domain.groups import GroupService
from cinderblock.domain.replication import BackendReplication
from cinderblock.domain.services import ServiceRegistry
from cinderblock.domain.snapshots import SnapshotService
from cinderblock.domain.types import TypeService
from cinderblock.domain.volumes import VolumeService
from cinderblock.domain.limits import LimitService
from cinderblock.domain.messages import MessageService


@dataclass(frozen=True)
class ApiServices:
    settings: Settings
    volumes: VolumeService
    snapshots: SnapshotService
    types: TypeService
    services: ServiceRegistry
    limits: LimitService
    messages: MessageService
    replication: BackendReplication
    group_types: GroupTypeService
    groups: GroupService
    group_snapshots: GroupSnapshotService
    group_replication: GroupReplicationService
    # Built from the settings' files unless given: the composition root need not know about policy.
    policy: Policy = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.policy is None:
            object.__setattr__(self, "policy", Policy.from_config_files(self.settings.config_files))


async def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


Svc = Annotated[ApiServices, Depends(get_services)]
