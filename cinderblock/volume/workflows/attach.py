"""Exports, connections and attachments of a volume."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cinderblock.db import tables
from cinderblock.db.loading import load_volume
from cinderblock.db import transition as state
from cinderblock.model import transitions
from cinderblock.model.errors import InvalidState, NotFound
from cinderblock.model.states import AttachStatus, VolumeStatus
from cinderblock.volume.driver import Connector
from cinderblock.volume.workflows.common import WorkflowDeps, model_values, volume_ref


def _load(deps: WorkflowDeps, volume_id: str) -> tables.Volume:
    with deps.db.read() as session:
        volume = load_volume(session, volume_id)
    if volume is None:
        raise NotFound.of("Volume", volume_id)
    return volume


def initialize_connection(deps: WorkflowDeps, volume_id: str, connector: dict[str, Any]) -> dict[str, Any]:
    volume = _load(deps, volume_id)
    ref, conn = volume_ref(volume), Connector(connector)
    export = deps.driver.create_export(ref, conn)
    values = model_values(export)
    if values:
        with deps.db.write() as session:
            state.write_fields(session, "volume", volume_id, values=values)  # an export's fields, never a state
        ref = volume_ref(_load(deps, volume_id))
    info = deps.driver.initialize_connection(ref, conn).to_dict()
    info["data"]["access_mode"] = "ro" if volume.readonly else "rw"
    return info


def terminate_connection(deps: WorkflowDeps, volume_id: str, connector: dict[str, Any] | None) -> None:
    volume = _load(deps, volume_id)
    deps.driver.terminate_connection(volume_ref(volume), Connector(connector) if connector else None)
    with deps.db.write() as session:
        # A volume reserved for an attach that never happened goes back to available.
        state.move(session, transitions.VOLUME_UNRESERVE, volume_id, to=VolumeStatus.AVAILABLE,
                   expect={"attach_status": AttachStatus.DETACHED})


def attach_volume(deps: WorkflowDeps, volume_id: str, attachment: dict[str, Any]) -> None:
    mode = attachment.get("mode") or "rw"
    with deps.db.write() as session:
        volume = load_volume(session, volume_id)
        if volume is None:
            raise NotFound.of("Volume", volume_id)
        allowed = {VolumeStatus.ATTACHING, VolumeStatus.AVAILABLE, VolumeStatus.RESERVED}
        if volume.multiattach:
            allowed.add(VolumeStatus.IN_USE)
        if volume.readonly and mode != "ro":
            raise InvalidState(f"Invalid volume: Volume {volume_id} is read-only; attach it with mode ro.")
        if not state.move(session, transitions.VOLUME_ATTACH, volume_id, expect={"status": allowed},
                          values={"attach_status": AttachStatus.ATTACHED}):
            raise InvalidState(f"Invalid volume: Volume {volume_id} status must be "
                               f"{' or '.join(sorted(allowed))} to attach, not {volume.status}.")
        state.insert(session, transitions.ATTACHMENT_INSERT,
                     volume_id=volume_id, instance_uuid=attachment.get("instance_uuid"),
                     attached_host=attachment.get("host_name"), mountpoint=attachment.get("mountpoint"),
                     attach_mode=mode, attach_time=tables.utcnow())


def detach_volume(deps: WorkflowDeps, volume_id: str, attachment_id: str | None) -> None:
    with deps.db.write() as session:
        volume = load_volume(session, volume_id)
        if volume is None:
            raise NotFound.of("Volume", volume_id)
        statement = select(tables.VolumeAttachment).where(tables.VolumeAttachment.volume_id == volume_id)
        attachments = list(session.scalars(statement))
        if attachment_id:
            chosen = [a for a in attachments if a.id == attachment_id]
            if not chosen:
                raise NotFound(f"Volume attachment {attachment_id} could not be found.")
        elif len(attachments) > 1:
            raise InvalidState("Invalid volume: Detach needs an attachment_id: the volume has several.")
        else:
            chosen = attachments
        for attachment in chosen:
            session.delete(attachment)
        remaining = len(attachments) - len(chosen)
        detached = state.move(session, transitions.VOLUME_DETACH, volume_id, to=VolumeStatus.IN_USE) if remaining else (
            state.move(session, transitions.VOLUME_DETACH, volume_id, to=VolumeStatus.AVAILABLE,
                       values={"attach_status": AttachStatus.DETACHED}))
        if not detached:
            raise InvalidState(f"Invalid volume: Volume {volume_id} status must be in-use or detaching "
                               f"to detach, not {volume.status}.")
    if not remaining:
        deps.driver.remove_export(volume_ref(volume))
