"""Quota sets and absolute limits."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cinderblock.config.settings import Settings
from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.repos import quotas as repo
from cinderblock.domain import quotas
from cinderblock.model.errors import Forbidden
from cinderblock.model.records import RequestContext


def _hidden_keys(session: Session, context: RequestContext) -> set[str]:
    """Per-type quota keys of private types the caller has no access to: they would name the type."""
    if context.is_admin:
        return set()
    granted = select(tables.VolumeTypeProject.volume_type_id).where(
        tables.VolumeTypeProject.project_id == context.project_id)
    names = session.scalars(select(tables.VolumeType.name).where(tables.VolumeType.is_public.is_(False),
                                                                  tables.VolumeType.id.not_in(granted)))
    return {f"{prefix}{name}" for name in names for prefix in quotas.PER_TYPE_PREFIXES}


class LimitService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.defaults = settings.quotas.as_dict()

    def _authorised(self, context: RequestContext, project_id: str) -> None:
        """Isolation, whatever the policy says: a non-admin reaches its own project's quotas only."""
        if not context.is_admin and project_id != context.project_id:
            raise Forbidden("Policy doesn't allow this operation to be performed.")

    def quota_set(self, context: RequestContext, project_id: str, usage: bool) -> dict[str, Any]:
        self._authorised(context, project_id)
        with self.db.read() as session:
            values = quotas.quota_set(self.defaults, session, project_id, usage)
            hidden = _hidden_keys(session, context)
        return {k: v for k, v in values.items() if k not in hidden}

    def defaults_set(self, context: RequestContext) -> dict[str, Any]:
        with self.db.read() as session:
            values = quotas.default_limits(self.defaults, session)
            hidden = _hidden_keys(session, context)
        return {k: v for k, v in values.items() if k not in hidden}

    def update(self, context: RequestContext, project_id: str, values: dict[str, int],
               check_usage: bool = False) -> dict[str, Any]:
        self._authorised(context, project_id)
        with self.db.write() as session:
            quotas.update_limits(self.defaults, session, project_id, values, check_usage)
        with self.db.read() as session:
            return quotas.quota_set(self.defaults, session, project_id, False)

    def reset(self, context: RequestContext, project_id: str) -> None:
        self._authorised(context, project_id)
        with self.db.write() as session:
            quotas.reset_limits(session, project_id)

    def absolute(self, context: RequestContext, project_id: str) -> dict[str, int]:
        self._authorised(context, project_id)
        with self.db.read() as session:
            limits = quotas.project_limits(self.defaults, session, project_id)
            used = repo.usages_of(session, project_id)
        return {
            "maxTotalVolumes": limits["volumes"], "maxTotalSnapshots": limits["snapshots"],
            "maxTotalVolumeGigabytes": limits["gigabytes"], "maxTotalBackups": limits["backups"],
            "maxTotalBackupGigabytes": limits["backup_gigabytes"],
            "totalVolumesUsed": used.get("volumes", 0), "totalGigabytesUsed": used.get("gigabytes", 0),
            "totalSnapshotsUsed": used.get("snapshots", 0), "totalBackupsUsed": used.get("backups", 0),
            "totalBackupGigabytesUsed": used.get("backup_gigabytes", 0),
        }
