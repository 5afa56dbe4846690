"""Group replication (API 3.38): enable, disable and fail over one replicated group's members."""
from __future__ import annotations

from cinderblock.volume.workflows.common import WorkflowDeps


def enable_replication(deps: WorkflowDeps, group_id: str) -> None:
    raise NotImplementedError


def disable_replication(deps: WorkflowDeps, group_id: str) -> None:
    raise NotImplementedError


def failover_replication(deps: WorkflowDeps, group_id: str, secondary_backend_id: str | None,
                         allow_attached_volume: bool) -> None:
    raise NotImplementedError
