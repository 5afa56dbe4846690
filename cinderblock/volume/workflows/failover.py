"""Whole-backend failover, failback, freeze and thaw: the service-level state machine."""
from __future__ import annotations

from cinderblock.volume.workflows.common import WorkflowDeps


def failover_host(deps: WorkflowDeps, secondary_backend_id: str | None) -> None:
    raise NotImplementedError


def freeze(deps: WorkflowDeps) -> None:
    raise NotImplementedError


def thaw(deps: WorkflowDeps) -> None:
    raise NotImplementedError
