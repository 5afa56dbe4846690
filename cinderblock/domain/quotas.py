"""Quota limits and enforcement, with Cinder's resource names and messages."""
from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.repos import quotas as repo
from cinderblock.model.errors import InvalidInput, QuotaExceeded

BASE_RESOURCES = ("volumes", "snapshots", "gigabytes", "backups", "backup_gigabytes", "groups",
                  "per_volume_gigabytes")
PER_TYPE_PREFIXES = ("volumes_", "snapshots_", "gigabytes_")


def default_limits(defaults: Mapping[str, int], session: Session) -> dict[str, int]:
    limits = dict(defaults)
    for name in session.scalars(select(tables.VolumeType.name)):
        for prefix in PER_TYPE_PREFIXES:
            limits[f"{prefix}{name}"] = -1
    return limits


def project_limits(defaults: Mapping[str, int], session: Session, project_id: str) -> dict[str, int]:
    limits = default_limits(defaults, session)
    limits.update(repo.limits_of(session, project_id))
    return limits


def effective_limits(defaults: Mapping[str, int], session: Session, project_id: str) -> dict[str, int]:
    """Limits that apply; per-type ones default to unlimited so the types need not be listed (hot path)."""
    return {**defaults, **repo.limits_of(session, project_id)}


def check_volume_size(limits: Mapping[str, int], size: int) -> None:
    per_volume = limits.get("per_volume_gigabytes", -1)
    if per_volume >= 0 and size > per_volume:
        # A quota error in Cinder too (413), not invalid input.
        raise QuotaExceeded(f"Requested volume size {size}G is larger than maximum allowed limit "
                            f"{per_volume}G.", "VolumeSizeExceedsLimit")


def consume(defaults: Mapping[str, int], session: Session, project_id: str, usage: Mapping[str, int],
            limits: Mapping[str, int] | None = None) -> None:
    """`limits` may be read beforehand (outside the write transaction, to keep it short)."""
    if limits is None:
        limits = effective_limits(defaults, session, project_id)
    try:
        repo.consume(session, project_id, usage, limits)
    except repo.UsageRefused as refused:
        raise _exceeded(refused) from None


def _exceeded(refused: repo.UsageRefused) -> QuotaExceeded:
    resource = refused.resource
    if resource.startswith("gigabytes"):
        return QuotaExceeded(
            f"Requested volume or snapshot exceeds allowed {resource} quota. Requested {refused.requested}G, "
            f"quota is {refused.limit}G and {refused.in_use}G has been consumed.",
            "VolumeSizeExceedsAvailableQuota")
    if resource.startswith("snapshots"):
        return QuotaExceeded(f"Maximum number of snapshots allowed ({refused.limit}) exceeded for quota "
                             f"'{resource}'.", "SnapshotLimitExceeded")
    if resource.startswith("volumes"):
        return QuotaExceeded(f"Maximum number of volumes allowed ({refused.limit}) exceeded for quota "
                             f"'{resource}'.", "VolumeLimitExceeded")
    return QuotaExceeded(f"Quota exceeded for resources: ['{resource}'].", "OverQuota")


def quota_set(defaults: Mapping[str, int], session: Session, project_id: str,
              usage: bool) -> dict[str, object]:
    limits = project_limits(defaults, session, project_id)
    if not usage:
        return dict(limits)
    in_use = repo.usages_of(session, project_id)
    return {name: {"limit": limit, "in_use": in_use.get(name, 0), "reserved": 0}
            for name, limit in limits.items()}


PROJECT_ID_MAX = 255


def update_limits(defaults: Mapping[str, int], session: Session, project_id: str,
                  values: Mapping[str, int], check_usage: bool = False) -> None:
    """`check_usage`: refuse a limit below what the project already uses (Cinder's skip_validation=False);
    otherwise such a limit is kept and only stops new usage."""
    if len(project_id) > PROJECT_ID_MAX:  # the column's width: no project has a longer id
        raise InvalidInput(f"Invalid input received: A project id is at most {PROJECT_ID_MAX} characters long.")
    known = default_limits(defaults, session)
    in_use = repo.usages_of(session, project_id)
    for name, value in values.items():
        if name not in known:
            raise InvalidInput(f"Bad key(s) in quota set: {name}")
        if value < -1:
            raise InvalidInput(f"Invalid input received: Quota limit {value} for {name} must be -1 or greater.")
        if check_usage and value >= 0 and name != "per_volume_gigabytes" and in_use.get(name, 0) > value:
            raise InvalidInput(f"Quota {name} limit must be equal or greater than existing resources. Current "
                               f"usage is {in_use.get(name, 0)} and the requested limit is {value}.")
        repo.set_limit(session, project_id, name, value)


def reset_limits(session: Session, project_id: str) -> None:
    repo.delete_limits(session, project_id)
