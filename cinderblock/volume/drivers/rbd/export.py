"""The export target of RBD volumes: nothing to export, hosts reach the images over librbd with the
`rbd` connection info of the cluster serving now."""
from __future__ import annotations

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import ConnectionInfo, Connector, ModelUpdate, VolumeRef
from cinderblock.volume.drivers.rbd.ceph import ceph_errors
from cinderblock.volume.drivers.rbd.images import Images
from cinderblock.volume.drivers.rbd.sites import Sites


class RbdExport:
    """Connection info of the active cluster (its monitors, user and secret) for a volume's image."""

    def __init__(self, sites: Sites, images: Images) -> None:
        self.sites = sites
        self.images = images

    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        return ModelUpdate()

    def remove_export(self, volume: VolumeRef) -> None:
        return None

    def export_exists(self, volume: VolumeRef) -> bool:
        return False

    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        pool = self.images.pool_name
        config = self.sites.active_config
        client = self.sites.client(config)
        with ceph_errors("reading the monitors"):
            if not self.images.exists(volume.name, config):
                raise DriverError(f"RBD image {pool}/{volume.name} does not exist")
            hosts, ports = client.monitors()
            secret = config.secret_uuid or client.fsid
        return ConnectionInfo(driver_volume_type="rbd", data={
            "name": f"{pool}/{volume.name}",
            "hosts": hosts,
            "ports": ports,
            "cluster_name": config.cluster_name,
            "auth_enabled": config.user is not None,
            "auth_username": config.user,
            "secret_type": "ceph",
            "secret_uuid": secret,
            "volume_id": volume.id,
            "discard": True,
            "access_mode": "rw",
        })

    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        return None
