"""oslo.config option declarations, with Cinder's names where Cinder has the option.

Options are registered on a ConfigOpts that is passed in; nothing here touches a global.
"""
from __future__ import annotations

import socket

from oslo_config import cfg

DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.StrOpt("state_path", default="./cinderblock-data",
               help="Directory for the SQLite database and the default volume files."),
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="<hostname>",
               help="Name of this node, used in host@backend."),
    cfg.ListOpt("enabled_backends", default=None,
                help="Backend sections this volume service runs. Default: one file backend 'local'."),
    cfg.StrOpt("default_volume_type", default="__DEFAULT__",
               help="Volume type used when a create names none."),
    cfg.StrOpt("auth_strategy", default="noauth", choices=["noauth", "keystone"],
               help="noauth takes 'user:project[:role,...]' tokens; keystone validates tokens with "
                    "keystonemiddleware ([keystone_authtoken] options as in Cinder)."),
    cfg.BoolOpt("noauth_allow_remote", default=False,
                help="Let auth_strategy = noauth listen on a non-loopback osapi_volume_listen. noauth "
                     "trusts whatever the token names: anyone who can connect is an administrator."),
    # oslo.messaging reads the same file on a ConfigOpts of its own (see rpc/oslo_transport.py),
    # so this declaration never clashes with its own `transport_url`.
    cfg.StrOpt("transport_url", default=None, secret=True,
               help="Unset: in-process dispatch (embedded). rabbit://user:pass@host:port/: scale-out."),
    cfg.StrOpt("osapi_volume_listen", default="127.0.0.1", help="Address the API binds to."),
    cfg.PortOpt("osapi_volume_listen_port", default=8776, help="Port the API binds to."),
    cfg.IntOpt("osapi_volume_workers", default=1, min=1, help="API worker processes (scale-out)."),
    cfg.IntOpt("osapi_max_limit", default=1000, min=1, help="Largest page a list returns."),
    cfg.IntOpt("osapi_max_request_body_size", default=114688, min=1,
               help="Largest request body in bytes; a larger one is refused with 413 before it is parsed."),
    cfg.IntOpt("api_thread_pool_size", default=2, min=1,
               help="Threads that run API handlers in one process. Handlers are CPU-bound Python and "
                    "share one interpreter lock: more threads only queue on it (measured: 2 threads "
                    "serve twice the creates per second of 40)."),
    cfg.StrOpt("storage_availability_zone", default="nova", help="Availability zone of this node."),
    cfg.StrOpt("default_availability_zone", default=None,
               help="Zone for volumes created without one (default: storage_availability_zone)."),
    cfg.IntOpt("service_down_time", default=60, min=1,
               help="Seconds without a heartbeat after which a service counts as down."),
    cfg.IntOpt("report_interval", default=10, min=1, help="Seconds between service heartbeats."),
    cfg.IntOpt("backend_stats_polling_interval", default=60, min=1,
               help="Seconds between capability reports of each backend to the schedulers."),
    cfg.IntOpt("volume_workers_per_backend", default=4, min=1,
               help="Concurrent operations one backend's volume manager runs (copies release the "
                    "interpreter lock; more threads for short operations only contend for it)."),
    cfg.IntOpt("periodic_interval", default=60, min=1,
               help="Seconds between runs of a volume service's periodic tasks (the stale-state sweep)."),
    cfg.IntOpt("transient_state_timeout", default=600, min=0,
               help="Seconds a volume, snapshot, group or group snapshot of a backend may stay in a "
                    "transient state (creating, deleting, extending...) with no change and no operation "
                    "of its volume service on it, before the periodic sweep settles it by checking "
                    "storage, as at start-up (0: only at start-up)."),
    cfg.IntOpt("graceful_shutdown_timeout", default=60, min=0,
               help="Seconds a service stopped by SIGTERM (or SIGINT) may take to finish the work it "
                    "is doing before it exits anyway; what it left is settled when it starts again "
                    "(0: wait for the work however long it takes)."),
    cfg.StrOpt("public_endpoint", default=None, help="Base URL used in links instead of the request's."),
    cfg.StrOpt("project_id_regex", default=r"[0-9a-f\-]+",
               help="What a {project_id} URL segment may look like."),
]

QUOTA_OPTS: list[cfg.Opt] = [
    cfg.IntOpt("quota_volumes", default=10, help="Volumes a project may have (-1: unlimited)."),
    cfg.IntOpt("quota_snapshots", default=10, help="Snapshots a project may have."),
    cfg.IntOpt("quota_gigabytes", default=1000, help="GiB of volumes and snapshots a project may have."),
    cfg.IntOpt("quota_backups", default=10, help="Backups a project may have."),
    cfg.IntOpt("quota_backup_gigabytes", default=1000, help="GiB of backups a project may have."),
    cfg.IntOpt("quota_groups", default=10, help="Groups a project may have."),
    cfg.IntOpt("per_volume_size_limit", default=-1, help="Largest single volume in GiB (-1: none)."),
    cfg.IntOpt("quota_metadata_items", default=128, min=0,
               help="Metadata items one volume or snapshot may have (413 beyond)."),
]

DATABASE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt("connection", default=None, secret=True,
               help="SQLAlchemy URL. Default: sqlite:///$state_path/cinderblock.sqlite"),
    cfg.IntOpt("max_pool_size", default=10, help="Connections kept per process (server databases)."),
]

COORDINATION_OPTS: list[cfg.Opt] = [
    cfg.StrOpt("backend_url", default=None, secret=True,
               help="tooz URL for locks across hosts (redis://..., mysql://...). None: local locks."),
]

# The filters and weighers cinderblock has, by the names the two options below take: checked at
# start-up here, mapped to their classes by placement/registry.py (tests/unit/test_scheduler.py keeps
# the two alike).
SCHEDULER_FILTER_NAMES = ("AvailabilityZoneFilter", "CapacityFilter", "CapabilitiesFilter", "RequiredBackendFilter",
                          "IgnoreAttemptedHostsFilter")
SCHEDULER_WEIGHER_NAMES = ("CapacityWeigher", "AllocatedCapacityWeigher", "VolumeNumberWeigher")

# Placement, with Cinder's option names (cinder/scheduler/host_manager.py, weights/*.py).
SCHEDULER_OPTS: list[cfg.Opt] = [
    cfg.ListOpt("scheduler_default_filters",
                default=["AvailabilityZoneFilter", "CapacityFilter", "CapabilitiesFilter"],
                help="Filters a pool must pass, in order: AvailabilityZoneFilter, CapacityFilter, "
                     "CapabilitiesFilter."),
    cfg.ListOpt("scheduler_default_weighers", default=["CapacityWeigher"],
                help="Weighers that rank the pools left: CapacityWeigher, AllocatedCapacityWeigher, "
                     "VolumeNumberWeigher."),
    cfg.FloatOpt("capacity_weight_multiplier", default=1.0,
                 help="CapacityWeigher: positive spreads volumes (most free space first), negative stacks."),
    cfg.FloatOpt("allocated_capacity_weight_multiplier", default=-1.0,
                 help="AllocatedCapacityWeigher: negative prefers the least allocated pool."),
    cfg.FloatOpt("volume_number_multiplier", default=-1.0,
                 help="VolumeNumberWeigher: negative prefers the pool holding the fewest volumes."),
    cfg.IntOpt("scheduler_max_attempts", default=3, min=1,
               help="Backends a create may be tried on when drivers fail it (1: no retry)."),
    cfg.IntOpt("scheduler_pool_max_age", default=None, min=1,
               help="Seconds after which pools of a backend that sent no capability report are ignored "
                    "(default: 3 x backend_stats_polling_interval)."),
    cfg.IntOpt("message_ttl", default=2592000, min=1,
               help="Seconds a user message (GET /messages) is kept at least (guaranteed_until)."),
]

# Options every backend section understands; drivers add their own OPTIONS.
BACKEND_OPTS: list[cfg.Opt] = [
    cfg.StrOpt("volume_driver", default="cinderblock.volume.drivers.file.driver.FileDriver",
               help="Driver class path, or a short name: file, rbd, fake, fake-consistent."),
    cfg.StrOpt("volume_backend_name", default=None, help="Name volume types match with volume_backend_name."),
    cfg.StrOpt("backend_host", default=None, help="Host name for this backend instead of [DEFAULT] host."),
    cfg.StrOpt("backend_availability_zone", default=None,
               help="Zone of this backend instead of storage_availability_zone."),
    cfg.IntOpt("reserved_percentage", default=0, min=0, max=100,
               help="Share of capacity kept free, in percent."),
    cfg.StrOpt("max_over_subscription_ratio", default="20.0",
               help="Provisioned/total ratio allowed for thin pools, a float ≥ 1 or 'auto'."),
    cfg.StrOpt("target_helper", default="local", choices=["local", "tgtadm"],
               help="How volumes are exported: local paths, or iSCSI through tgt."),
    cfg.StrOpt("target_ip_address", default="127.0.0.1", help="Portal address of iSCSI exports."),
    cfg.PortOpt("target_port", default=3260, help="Portal port of iSCSI exports."),
    cfg.StrOpt("target_prefix", default="iqn.2010-10.org.openstack:", help="IQN prefix of exports."),
    cfg.BoolOpt("use_chap_auth", default=True, help="Protect iSCSI exports with CHAP."),
    cfg.StrOpt("chap_username", default="", help="CHAP user (empty: random per volume)."),
    cfg.StrOpt("chap_password", default="", secret=True, help="CHAP secret (empty: random per volume)."),
    cfg.MultiStrOpt("replication_device", default=[],
                    help="backend_id:<id>, <driver keys>: a replication target."),
    cfg.IntOpt("replication_interval", default=60, min=1,
               help="Seconds between two copies of a replicated volume to its targets (asynchronous "
                    "drivers); a volume type overrides it with the extra spec replication:interval."),
]

DRIVER_ALIASES: dict[str, str] = {
    "file": "cinderblock.volume.drivers.file.driver.FileDriver",
    "fake": "cinderblock.volume.drivers.fake.FakeDriver",
    # The fake with consistent group snapshots (the plain fake takes them one by one).
    "fake-consistent": "cinderblock.volume.drivers.fake_consistent.ConsistentFakeDriver",
    "rbd": "cinderblock.volume.drivers.rbd.driver.RBDDriver",
}


def register_global_options(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(DEFAULT_OPTS)
    conf.register_opts(QUOTA_OPTS)
    conf.register_opts(SCHEDULER_OPTS)
    conf.register_opts(DATABASE_OPTS, group="database")
    conf.register_opts(COORDINATION_OPTS, group="coordination")
    conf.register_opts(BACKEND_OPTS, group="backend_defaults")
