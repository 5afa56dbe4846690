"""The volume driver contract: one small required core, optional capabilities as separate ABCs.

Drivers only touch storage. They never import `db` or `domain`, never write a status, and return
results (frozen dataclasses) that the volume manager persists. Capabilities are checked with
`isinstance(driver, SupportsX)`, never by catching NotImplementedError.

Every method may raise `cinderblock.model.errors.DriverError` (or any exception, which the manager
treats the same): the workflow then moves the resource to its failure state.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Built by config (the resolved options of one backend); part of the contract every driver takes.
from cinderblock.config.settings import DriverOptions as DriverOptions
from cinderblock.model.specs import spec_is_true

# Called with a whole percentage 0..100 during long copies.
ProgressCallback = Callable[[int], None]


def no_progress(_percent: int) -> None:
    """Default progress sink."""


@dataclass(frozen=True)
class VolumeRef:
    """What a driver knows of a volume."""

    id: str
    size_gb: int
    pool: str | None = None
    provider_location: str | None = None
    provider_auth: str | None = None
    # Extra specs of the volume's type (drivers may read driver-scoped keys).
    extra_specs: Mapping[str, str] = field(default_factory=dict)
    # Opaque to the manager: what the driver returned last as `replication_driver_data`.
    replication_driver_data: str | None = None
    group_id: str | None = None

    @property
    def replicated(self) -> bool:
        """The volume's type asks for replication (`replication_enabled='<is> True'`), read as the API
        reads it when it sets the volume's replication_status (model/specs.py)."""
        return spec_is_true(self.extra_specs, "replication_enabled")

    @property
    def name(self) -> str:
        return f"volume-{self.id}"


@dataclass(frozen=True)
class SnapshotRef:
    id: str
    volume: VolumeRef
    size_gb: int
    provider_location: str | None = None

    @property
    def name(self) -> str:
        return f"snapshot-{self.id}"


@dataclass(frozen=True)
class ModelUpdate:
    """Fields the manager writes to the resource's row after a driver call. None: leave as is."""

    provider_location: str | None = None
    provider_auth: str | None = None
    # Volumes only: `enabled` when the driver now replicates the volume, `disabled` when it does not.
    replication_status: str | None = None
    replication_driver_data: str | None = None


@dataclass(frozen=True)
class Connector:
    """The attaching host, as os-brick describes it (`initiator`, `host`, `ip`, `multipath`...)."""

    properties: Mapping[str, Any]

    @property
    def host(self) -> str | None:
        value = self.properties.get("host")
        return str(value) if value is not None else None

    @property
    def initiator(self) -> str | None:
        value = self.properties.get("initiator")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class ConnectionInfo:
    """Cinder's `connection_info`: `{"driver_volume_type": ..., "data": {...}}`."""

    driver_volume_type: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"driver_volume_type": self.driver_volume_type, "data": dict(self.data)}


@dataclass(frozen=True)
class PoolStats:
    name: str
    total_capacity_gb: float
    free_capacity_gb: float
    # Sum of the sizes of the volumes this pool holds (what was handed out).
    provisioned_capacity_gb: float = 0.0
    allocated_capacity_gb: float = 0.0
    reserved_percentage: int = 0
    max_over_subscription_ratio: float = 1.0
    thin_provisioning_support: bool = True
    thick_provisioning_support: bool = False
    # Further capability keys (reported as-is, matched by extra specs).
    capabilities: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendStats:
    volume_backend_name: str
    vendor_name: str
    driver_version: str
    storage_protocol: str
    pools: tuple[PoolStats, ...]
    # Backend-level capability keys; every pool inherits them.
    capabilities: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageListing:
    """What the backend's storage holds, by resource id (recovery compares it with the rows)."""

    # volume id -> size in bytes
    volumes: Mapping[str, int] = field(default_factory=dict)
    snapshots: frozenset[str] = frozenset()
    # ids of volumes that have an export (tgt target...); empty when exports hold no state
    exports: frozenset[str] = frozenset()


class VolumeDriver(abc.ABC):
    """Required core every driver implements.

    `options` holds the backend's resolved configuration: Cinder's common backend options
    (`volume_backend_name`, `reserved_percentage`, `max_over_subscription_ratio`, `target_helper`...)
    plus the options the driver declares in `OPTIONS`.
    """

    # oslo.config Opt objects this driver reads; registered per backend section by the config layer.
    OPTIONS: tuple[Any, ...] = ()

    def __init__(self, backend_name: str, options: DriverOptions, state_path: str) -> None:
        self.backend_name = backend_name
        self.options = options
        self.state_path = state_path

    @abc.abstractmethod
    def do_setup(self) -> None:
        """Called once when the service starts, before anything else. Creates what the driver needs."""

    @abc.abstractmethod
    def check_for_setup_error(self) -> None:
        """Called after do_setup. Raises DriverError if the backend cannot work (missing tool, path)."""

    @abc.abstractmethod
    def get_stats(self) -> BackendStats:
        """Called periodically and after changes: capacity and capabilities, per pool."""

    @abc.abstractmethod
    def create_volume(self, volume: VolumeRef) -> ModelUpdate:
        """Create an empty volume of volume.size_gb in volume.pool."""

    @abc.abstractmethod
    def delete_volume(self, volume: VolumeRef) -> None:
        """Remove the volume's storage. A volume that is already gone is not an error."""

    @abc.abstractmethod
    def volume_exists(self, volume: VolumeRef) -> bool:
        """True when the volume's storage exists (used by recovery to check, not guess)."""

    @abc.abstractmethod
    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> None:
        """Grow the volume to new_size_gb, keeping its data."""

    @abc.abstractmethod
    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> ModelUpdate:
        """Take a point-in-time copy of snapshot.volume."""

    @abc.abstractmethod
    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        """Remove the snapshot's storage. Already gone is not an error."""

    @abc.abstractmethod
    def create_volume_from_snapshot(
        self, volume: VolumeRef, snapshot: SnapshotRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        """Create volume with the snapshot's bytes; volume.size_gb may be larger than the snapshot."""

    @abc.abstractmethod
    def create_cloned_volume(
        self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        """Create volume with source's current bytes; volume.size_gb may be larger."""

    @abc.abstractmethod
    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        """Make the volume's bytes those of the snapshot again."""

    @abc.abstractmethod
    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        """Make the volume reachable for connector (idempotent). May return provider_auth (CHAP)."""

    @abc.abstractmethod
    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        """Connection info for connector; create_export was called before."""

    @abc.abstractmethod
    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        """connector (or every connector when None) no longer uses the volume."""

    @abc.abstractmethod
    def remove_export(self, volume: VolumeRef) -> None:
        """Withdraw every export of the volume. No export is not an error."""

    @abc.abstractmethod
    def export_exists(self, volume: VolumeRef) -> bool:
        """True when an export of the volume exists (used by recovery)."""

    @abc.abstractmethod
    def list_storage(self) -> StorageListing:
        """Every volume, snapshot and export of this backend's own storage, complete ones only
        (nothing half-written). Recovery removes what has no row and fails rows with no storage;
        removal goes through delete_volume/delete_snapshot/remove_export with refs that carry
        only the id, so those must find the storage by id alone."""


@dataclass(frozen=True)
class GroupSnapshotResult:
    """What a consistent group snapshot produced: one update per snapshot (same order) and how long
    new writes to the members were held."""

    updates: tuple[ModelUpdate, ...]
    write_pause_ms: float


class SupportsConsistentGroupSnapshot(abc.ABC):
    """Optional capability: snapshot several volumes of this backend at one instant.

    A driver reporting `consistent_group_snapshot_enabled` implements it. Without it the manager takes
    the members' snapshots one by one and marks the group snapshot as not consistent.
    """

    @abc.abstractmethod
    def create_group_snapshot(self, snapshots: Sequence[SnapshotRef],
                              progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        """Hold new writes to every member, take every snapshot, release. All or nothing: on error no
        snapshot of the group is left behind."""


# --- replication (whole-backend failover, Cinder's "v2.1") ------------------------------------

# The id that means "the primary" in failover requests (failback).
PRIMARY_BACKEND_ID = "default"


@dataclass(frozen=True)
class ReplicationDevice:
    """One `replication_device = backend_id:<id>, key:value, ...` entry of the backend's section."""

    backend_id: str
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "ReplicationDevice":
        from cinderblock.model.errors import DriverError  # the contract module stays import-light

        values: dict[str, str] = {}
        for item in text.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition(":")
            if not sep or not key.strip():
                raise DriverError(f"replication_device entry {item.strip()!r} is not key:value (in {text!r})")
            values[key.strip()] = value.strip()
        backend_id = values.pop("backend_id", "")
        if not backend_id:
            raise DriverError(f"replication_device {text!r} has no backend_id")
        if backend_id == PRIMARY_BACKEND_ID:
            raise DriverError(f"replication_device backend_id must not be {PRIMARY_BACKEND_ID!r}")
        return cls(backend_id, values)


def replication_devices(options: Mapping[str, Any]) -> tuple[ReplicationDevice, ...]:
    """The backend's configured targets, parsed; duplicate ids are a configuration error."""
    from cinderblock.model.errors import DriverError

    raw = options.get("replication_device") or []
    devices = tuple(ReplicationDevice.parse(entry) for entry in ([raw] if isinstance(raw, str) else raw))
    ids = [device.backend_id for device in devices]
    if len(set(ids)) != len(ids):
        raise DriverError(f"replication_device backend_ids repeat: {ids}")
    return devices


def resolve_failover_target(targets: Sequence[ReplicationDevice], active: str | None,
                            secondary_id: str | None) -> str | None:
    """The site a failover request switches to (None: the primary), by the contract's rules; raises
    InvalidReplicationTarget when there is none. `active`: the target serving now (None: primary)."""
    from cinderblock.model.errors import InvalidReplicationTarget

    if not targets:
        raise InvalidReplicationTarget("replication is not configured on this backend")
    if secondary_id == PRIMARY_BACKEND_ID:
        if active is None:
            raise InvalidReplicationTarget("the backend is not failed over: there is nothing to fail back")
        return None
    ids = [target.backend_id for target in targets]
    if secondary_id is None:
        choices = [i for i in ids if i != active]
        if not choices:
            raise InvalidReplicationTarget("no replication target other than the active one is configured")
        return choices[0]
    if secondary_id not in ids:
        raise InvalidReplicationTarget(f"{secondary_id!r} is not a replication target of this backend ({ids})")
    if secondary_id == active:
        raise InvalidReplicationTarget(f"{secondary_id!r} is already the active backend")
    return secondary_id


@dataclass(frozen=True)
class ReplicaState:
    """How far one volume's copy on one target is behind the volume."""

    target: str
    # Wall-clock time (epoch seconds) of the point in time the last complete copy holds; None: no copy yet.
    last_complete_at: float | None
    # Bytes changed since that point and not yet complete on the target (an estimate while sending).
    bytes_pending: int
    in_flight: bool = False


@dataclass(frozen=True)
class VolumeFailover:
    """The driver's outcome for one volume of a failover or failback."""

    volume_id: str
    ok: bool
    update: ModelUpdate = ModelUpdate()
    # How old the data now served is (seconds); 0.0 when a final sync lost nothing; None: unknown.
    data_age_seconds: float | None = None
    error: str | None = None
    # False: the volume's snapshots are not on the site that serves it now (the manager errors them,
    # and gives them back on failback when the primary still holds them).
    snapshots_kept: bool = True


@dataclass(frozen=True)
class FailoverResult:
    # Target now serving the volumes; None when the primary serves them again.
    active_backend_id: str | None
    volumes: tuple[VolumeFailover, ...]
    # For the admin: e.g. that the primary was unreachable and how old the promoted copies are.
    message: str = ""


class SupportsReplication(abc.ABC):
    """Optional capability: replicate volumes of replicated types to every `replication_device` and
    fail the whole backend over to one of them, and back.

    Which volumes replicate: those whose `VolumeRef.replicated` is true, from their creation on; the
    driver returns `replication_status` in the ModelUpdate of create/clone/from-snapshot. Stats report
    `replication_enabled`, `replication_targets` and the lag summary keys.
    """

    @abc.abstractmethod
    def set_active_backend(self, backend_id: str | None) -> None:
        """Before do_setup: the target that serves this backend after a failover (None: the primary),
        as the service row remembers it across restarts."""

    @abc.abstractmethod
    def replication_targets(self) -> tuple[ReplicationDevice, ...]:
        """The configured targets (validated by do_setup)."""

    @abc.abstractmethod
    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        """Make `secondary_id` serve `volumes` (the backend's replicated volumes) and every later call.

        secondary_id None: the driver picks a target other than the active one. PRIMARY_BACKEND_ID:
        fail back, after sending what was written on the active target back to the primary.
        Raises InvalidReplicationTarget (model.errors) when the id names no usable target, with
        nothing changed; any other error only after reverting to the previous active backend.
        Volumes are handled in parallel; one volume's failure is reported in its VolumeFailover."""

    @abc.abstractmethod
    def freeze_backend(self) -> None:
        """The control plane of the backend becomes read-only; raise to refuse."""

    @abc.abstractmethod
    def thaw_backend(self) -> None:
        """Undo freeze_backend; raise to refuse."""

    @abc.abstractmethod
    def replication_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        """volume id → its state on every target, for the replicated volumes this driver knows."""


class SupportsGroupReplication(abc.ABC):
    """Optional capability (API 3.38): replicate a group's volumes at one instant and fail one group
    over on its own, while the rest of the backend stays where it is."""

    @abc.abstractmethod
    def enable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        """Start replicating the members as one consistent set (one update per volume, same order)."""

    @abc.abstractmethod
    def disable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        """Stop replicating the members as a set (and stop replicating them at all)."""

    @abc.abstractmethod
    def failover_group(self, group_id: str, volumes: Sequence[VolumeRef],
                       secondary_id: str | None) -> FailoverResult:
        """Like failover_host, for the group's members only: all of them land on one common point."""
