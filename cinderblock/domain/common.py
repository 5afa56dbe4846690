"""What the domain services share: their dependencies and small lookups."""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from cinderblock.config.settings import Settings
from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.loading import load_volume
from cinderblock.db.query import ListQuery
from cinderblock.model.errors import Forbidden, InvalidInput, NotFound, QuotaExceeded, ServiceUnavailable
from cinderblock.model.records import RequestContext
from cinderblock.rpc.clients import SchedulerClient, VolumeClient

C = TypeVar("C")


@dataclass
class DomainDeps:
    db: Database
    settings: Settings
    scheduler: SchedulerClient
    volumes: VolumeClient


def claim_and_cast(db: Database, claim: Callable[[Session], C], cast: Callable[[C], object],
                   undo: Callable[[Session, C], object],
                   run: Callable[[Callable[[Session], C]], C] | None = None) -> C:
    """A request's three steps: `claim` (checks, then the transient states by compare-and-swap, in one
    transaction), `cast` the work to a service, and when that service cannot be reached (503) `undo`
    what the claim changed, in another transaction, so that a 503 means nothing happened. The claim's
    result (what the cast and the undo need) is returned. `run` runs the claim's transaction when one
    `db.write()` is not enough (a create's insert is run again after a deadlock)."""
    if run is not None:
        claimed = run(claim)
    else:
        with db.write() as session:
            claimed = claim(session)
    try:
        cast(claimed)
    except ServiceUnavailable:
        with db.write() as session:
            undo(session, claimed)
        raise
    return claimed


def owner_project(context: RequestContext, kind: str) -> str:
    """The project a new resource of the caller belongs to. A token scoped to the system or to a domain
    names none: such a caller (an administrator, say) reaches every project's resources but owns none."""
    if not context.project_id:
        scope = f"scoped to the system ({context.system_scope})" if context.system_scope else "not scoped to a project"
        raise Forbidden(f"A {kind} belongs to a project: creating one needs a project-scoped token (this one is "
                        f"{scope}).")
    return context.project_id


def listed(query: ListQuery, context: RequestContext, all_tenants: bool) -> ListQuery:
    """What a list request sees: the caller's project, or every project for an administrator who asks."""
    return query if context.is_admin and all_tenants else query.scoped(project_id=context.project_id)


def owned(row: Any, context: RequestContext) -> bool:
    return context.is_admin or getattr(row, "project_id", context.project_id) == context.project_id


def get_volume(session: Session, context: RequestContext, volume_id: str) -> tables.Volume:
    volume = load_volume(session, volume_id)
    if volume is None or not owned(volume, context):
        raise NotFound.of("Volume", volume_id)
    return volume


def get_snapshot(session: Session, context: RequestContext, snapshot_id: str) -> tables.Snapshot:
    snapshot = session.get(tables.Snapshot, snapshot_id)
    if snapshot is None or not owned(snapshot, context):
        raise NotFound.of("Snapshot", snapshot_id)
    return snapshot


METADATA_FIELD_MAX = 255  # the columns' width, as in Cinder


def check_metadata(metadata: Mapping[str, str], max_items: int) -> None:
    """Cinder's rules for the metadata of a volume or snapshot (keys of 1 to 255 characters, values of
    at most 255, at most `quota_metadata_items` items), with Cinder's messages."""
    for key, value in metadata.items():
        if not key:
            raise InvalidInput("Invalid metadata: Metadata property key blank.")
        if len(key) > METADATA_FIELD_MAX:
            raise InvalidInput("Invalid metadata size: Metadata property key greater than 255 characters.")
        if len(value) > METADATA_FIELD_MAX:
            raise InvalidInput("Invalid metadata size: Metadata property value greater than 255 characters.")
    check_metadata_count(len(metadata), max_items)


def check_metadata_count(count: int, max_items: int) -> None:
    if count > max_items:
        raise QuotaExceeded(f"Maximum number of metadata items exceeds {max_items}", kind="MetadataLimitExceeded")


def replace_metadata(session: Session, row: Any, item_class: type[Any], owner_key: str,
                     metadata: dict[str, str], delete_missing: bool, max_items: int) -> None:
    """Merge (or replace) key/value metadata of a volume or snapshot, within Cinder's limits."""
    check_metadata(metadata, max_items)
    current = {item.key: item for item in row.metadata_items}
    for key, value in metadata.items():
        if key in current:
            current[key].value = value
        else:
            row.metadata_items.append(item_class(**{owner_key: row.id, "key": key, "value": value}))
    if delete_missing:
        for key, item in current.items():
            if key not in metadata:
                row.metadata_items.remove(item)
    check_metadata_count(len(row.metadata_items), max_items)
