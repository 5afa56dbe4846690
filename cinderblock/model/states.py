"""Every status a resource can be in, as string enums (the values are the API's)."""
from enum import StrEnum


class VolumeStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    ATTACHING = "attaching"
    IN_USE = "in-use"
    DETACHING = "detaching"
    RESERVED = "reserved"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    EXTENDING = "extending"
    ERROR_EXTENDING = "error_extending"
    RETYPING = "retyping"
    MAINTENANCE = "maintenance"
    BACKING_UP = "backing-up"
    ERROR_BACKING_UP = "error_backing-up"
    RESTORING_BACKUP = "restoring-backup"
    ERROR_RESTORING = "error_restoring"
    DOWNLOADING = "downloading"
    UPLOADING = "uploading"
    AWAITING_TRANSFER = "awaiting-transfer"
    MANAGING = "managing"
    ERROR_MANAGING = "error_managing"
    REVERTING = "reverting"


# Statuses an admin may set with os-reset_status (Cinder's VolumeStatus.ALL less internal ones).
VOLUME_RESET_STATUSES = frozenset(
    s.value for s in VolumeStatus if s not in (VolumeStatus.REVERTING,)
)


class AttachStatus(StrEnum):
    DETACHED = "detached"
    ATTACHING = "attaching"
    ATTACHED = "attached"
    RESERVED = "reserved"
    ERROR_ATTACHING = "error_attaching"
    ERROR_DETACHING = "error_detaching"


class SnapshotStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    RESTORING = "restoring"
    BACKING_UP = "backing-up"
    UPDATING = "updating"
    UNMANAGING = "unmanaging"
    DELETED = "deleted"


class ReplicationStatus(StrEnum):
    DISABLED = "disabled"
    ENABLED = "enabled"
    ENABLING = "enabling"
    DISABLING = "disabling"
    FAILING_OVER = "failing-over"
    FAILED_OVER = "failed-over"
    FAILOVER_ERROR = "failover-error"
    NOT_CAPABLE = "not-capable"
    ERROR = "error"


class MigrationStatus(StrEnum):
    STARTING = "starting"
    MIGRATING = "migrating"
    COMPLETING = "completing"
    SUCCESS = "success"
    ERROR = "error"
    DELETING = "deleting"
