"""One typed client per service; each method is one remote call.

SchedulerClient (topic cinder-scheduler)
    1.0  create_volume, update_service_capabilities, get_pools
    1.1  create_group
    1.2  update_service_capabilities(reported_at=...), capacity_freed (fan-out)
VolumeClient (topic cinder-volume, server host@backend)
    1.0  create_volume, delete_volume, extend_volume, create_snapshot, delete_snapshot,
         revert_to_snapshot, initialize_connection, terminate_connection, attach_volume,
         detach_volume, get_capabilities, publish_capabilities (fan-out)
    1.1  create_group, update_group, delete_group, create_group_from_src, create_group_snapshot,
         delete_group_snapshot
    1.2  create_volume(request_spec=...): the scheduler's spec, for a reschedule on failure
    1.3  failover (cast), freeze_host, thaw_host (calls); enable_replication, disable_replication,
         failover_replication (group replication, casts)
"""
from __future__ import annotations

from typing import Any

from cinderblock.model.records import RequestContext, RequestSpec
from cinderblock.rpc.transport import Transport

SCHEDULER_TOPIC = "cinder-scheduler"
VOLUME_TOPIC = "cinder-volume"


class SchedulerClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create_volume(self, context: RequestContext, spec: RequestSpec) -> None:
        self._transport.cast(SCHEDULER_TOPIC, None, "create_volume", context.to_wire(), spec=spec.to_wire())

    def update_service_capabilities(self, context: RequestContext, service_host: str,
                                    capabilities: dict[str, Any], reported_at: float | None = None) -> None:
        """reported_at: when the stats were read (the volume service's clock; see capacity_freed)."""
        self._transport.fanout(SCHEDULER_TOPIC, "update_service_capabilities", context.to_wire(),
                               service_host=service_host, capabilities=capabilities, reported_at=reported_at)

    def capacity_freed(self, context: RequestContext, service_host: str, pool: str, size_gb: float,
                       volume_id: str, since: float) -> None:
        """Every scheduler gives the pool back `size_gb` at once; a report read after `since` (when
        the delete's storage work began) counts it instead."""
        self._transport.fanout(SCHEDULER_TOPIC, "capacity_freed", context.to_wire(), service_host=service_host,
                               pool=pool, size_gb=size_gb, volume_id=volume_id, since=since)

    def get_pools(self, context: RequestContext) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._transport.call(SCHEDULER_TOPIC, None, "get_pools", context.to_wire())
        return result

    def create_group(self, context: RequestContext, group_id: str, type_specs: list[dict[str, str]],
                     group_specs: dict[str, str], availability_zone: str | None) -> None:
        """Place a group on a backend supporting every volume type and the group type's specs."""
        self._transport.cast(SCHEDULER_TOPIC, None, "create_group", context.to_wire(), group_id=group_id,
                             type_specs=type_specs, group_specs=group_specs, availability_zone=availability_zone)


class VolumeClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _cast(self, service_host: str, method: str, context: RequestContext, **kwargs: Any) -> None:
        self._transport.cast(VOLUME_TOPIC, service_host, method, context.to_wire(), **kwargs)

    def _call(self, service_host: str, method: str, context: RequestContext, **kwargs: Any) -> Any:
        return self._transport.call(VOLUME_TOPIC, service_host, method, context.to_wire(), **kwargs)

    def create_volume(self, context: RequestContext, service_host: str, volume_id: str, pool: str | None,
                      request_spec: RequestSpec | None = None) -> None:
        # request_spec (1.2): lets the volume service hand a failed create back to the scheduler.
        extra = {"request_spec": request_spec.to_wire()} if request_spec is not None else {}
        self._cast(service_host, "create_volume", context, volume_id=volume_id, pool=pool, **extra)

    def delete_volume(self, context: RequestContext, service_host: str, volume_id: str) -> None:
        self._cast(service_host, "delete_volume", context, volume_id=volume_id)

    def extend_volume(self, context: RequestContext, service_host: str, volume_id: str, new_size: int) -> None:
        self._cast(service_host, "extend_volume", context, volume_id=volume_id, new_size=new_size)

    def create_snapshot(self, context: RequestContext, service_host: str, snapshot_id: str) -> None:
        self._cast(service_host, "create_snapshot", context, snapshot_id=snapshot_id)

    def delete_snapshot(self, context: RequestContext, service_host: str, snapshot_id: str) -> None:
        self._cast(service_host, "delete_snapshot", context, snapshot_id=snapshot_id)

    def revert_to_snapshot(self, context: RequestContext, service_host: str, volume_id: str,
                           snapshot_id: str) -> None:
        self._cast(service_host, "revert_to_snapshot", context, volume_id=volume_id, snapshot_id=snapshot_id)

    def initialize_connection(self, context: RequestContext, service_host: str, volume_id: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(service_host, "initialize_connection", context,
                                            volume_id=volume_id, connector=connector)
        return result

    def terminate_connection(self, context: RequestContext, service_host: str, volume_id: str,
                             connector: dict[str, Any] | None) -> None:
        self._call(service_host, "terminate_connection", context, volume_id=volume_id, connector=connector)

    def attach_volume(self, context: RequestContext, service_host: str, volume_id: str,
                      attachment: dict[str, Any]) -> None:
        self._call(service_host, "attach_volume", context, volume_id=volume_id, attachment=attachment)

    def detach_volume(self, context: RequestContext, service_host: str, volume_id: str,
                      attachment_id: str | None) -> None:
        self._call(service_host, "detach_volume", context, volume_id=volume_id, attachment_id=attachment_id)

    def publish_capabilities(self, context: RequestContext) -> None:
        """Every volume service reports its capabilities soon (a scheduler just started)."""
        self._transport.fanout(VOLUME_TOPIC, "publish_capabilities", context.to_wire())

    def get_capabilities(self, context: RequestContext, service_host: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(service_host, "get_capabilities", context)
        return result

    # --- groups (owned by the manager of the group's backend) ----------------------------
    def create_group(self, context: RequestContext, service_host: str, group_id: str) -> None:
        self._cast(service_host, "create_group", context, group_id=group_id)

    def update_group(self, context: RequestContext, service_host: str, group_id: str,
                     add_volumes: list[str], remove_volumes: list[str]) -> None:
        self._cast(service_host, "update_group", context, group_id=group_id, add_volumes=add_volumes,
                   remove_volumes=remove_volumes)

    def delete_group(self, context: RequestContext, service_host: str, group_id: str) -> None:
        self._cast(service_host, "delete_group", context, group_id=group_id)

    def create_group_from_src(self, context: RequestContext, service_host: str, group_id: str) -> None:
        self._cast(service_host, "create_group_from_src", context, group_id=group_id)

    def create_group_snapshot(self, context: RequestContext, service_host: str, group_snapshot_id: str) -> None:
        self._cast(service_host, "create_group_snapshot", context, group_snapshot_id=group_snapshot_id)

    def delete_group_snapshot(self, context: RequestContext, service_host: str, group_snapshot_id: str) -> None:
        self._cast(service_host, "delete_group_snapshot", context, group_snapshot_id=group_snapshot_id)

    # --- replication (owned by the manager of the backend) -------------------------------
    def failover(self, context: RequestContext, service_host: str, secondary_backend_id: str | None) -> None:
        """Fail the whole backend over (or back, with "default"); the API already set failing-over."""
        self._cast(service_host, "failover", context, secondary_backend_id=secondary_backend_id)

    def freeze_host(self, context: RequestContext, service_host: str) -> None:
        self._call(service_host, "freeze_host", context)

    def thaw_host(self, context: RequestContext, service_host: str) -> None:
        self._call(service_host, "thaw_host", context)

    def enable_replication(self, context: RequestContext, service_host: str, group_id: str) -> None:
        self._cast(service_host, "enable_replication", context, group_id=group_id)

    def disable_replication(self, context: RequestContext, service_host: str, group_id: str) -> None:
        self._cast(service_host, "disable_replication", context, group_id=group_id)

    def failover_replication(self, context: RequestContext, service_host: str, group_id: str,
                             secondary_backend_id: str | None, allow_attached_volume: bool,
                             previous_replication_status: dict[str, str] | None = None) -> None:
        """previous_replication_status: row id (group, members) → its replication status before the
        claim; what the manager restores when the driver refuses the target."""
        extra = ({"previous_replication_status": previous_replication_status}
                 if previous_replication_status is not None else {})
        self._cast(service_host, "failover_replication", context, group_id=group_id,
                   secondary_backend_id=secondary_backend_id, allow_attached_volume=allow_attached_volume, **extra)
