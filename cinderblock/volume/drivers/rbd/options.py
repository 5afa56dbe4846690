"""The RBD driver's options (Cinder's names), registered per backend section by the config layer."""
from __future__ import annotations

from oslo_config import cfg

rbd_opts = (
    cfg.StrOpt("rbd_pool", default="rbd", help="The RADOS pool holding the volumes (same name on every cluster)."),
    cfg.StrOpt("rbd_user", default=None, help="The RADOS client id (without 'client.'); unset: librados' default."),
    cfg.StrOpt("rbd_ceph_conf", default="", help="Path to the cluster's ceph.conf; empty: librados' search path."),
    cfg.StrOpt("rbd_cluster_name", default="ceph", help="The cluster name (selects /etc/ceph/<name>.conf)."),
    cfg.StrOpt("rbd_secret_uuid", default=None,
               help="The libvirt secret holding rbd_user's key; unset: the cluster's fsid."),
    cfg.IntOpt("rbd_max_clone_depth", default=5, min=0,
               help="Clones deeper than this are flattened; 0: clones are always full copies."),
    cfg.BoolOpt("rbd_flatten_volume_from_snapshot", default=False,
                help="Flatten volumes created from snapshots (no dependency on the snapshot)."),
    cfg.IntOpt("rbd_store_chunk_size", default=4, min=1, help="Object size of new images, in MiB (power of two)."),
    cfg.IntOpt("replication_connect_timeout", default=5,
               help="Seconds to wait for a cluster during failover demotions/promotions; <0: librados' default."),
    cfg.StrOpt("rbd_replication_mode", default="journal", choices=("journal", "snapshot"),
               help="Mirroring mode of replicated volumes; a type overrides it with replication:mode."),
    cfg.IntOpt("rbd_failover_workers", default=32, min=1,
               help="Volumes demoted/promoted at once during failover and failback."),
    cfg.IntOpt("rbd_failover_promote_timeout", default=60, min=1,
               help="Seconds a clean promotion waits for the target to replay the demotion before it is forced."),
)
