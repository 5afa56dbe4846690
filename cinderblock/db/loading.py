"""Eager-loading options: one SELECT for a row and everything read with it."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, joinedload

from cinderblock.db import tables

_TYPE = joinedload(tables.Volume.volume_type)
VOLUME_LOAD = (joinedload(tables.Volume.metadata_items), joinedload(tables.Volume.attachments),
               _TYPE.joinedload(tables.VolumeType.extra_specs), _TYPE.joinedload(tables.VolumeType.projects))
TYPE_LOAD = (joinedload(tables.VolumeType.extra_specs), joinedload(tables.VolumeType.projects))


def load_volume(session: Session, volume_id: str, **kwargs: Any) -> tables.Volume | None:
    return session.get(tables.Volume, volume_id, options=VOLUME_LOAD, **kwargs)
