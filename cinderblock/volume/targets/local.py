"""The "local" helper: the consumer runs on this host and opens the volume's file directly."""
from __future__ import annotations

from cinderblock.volume.driver import ConnectionInfo, Connector
from cinderblock.volume.targets.base import Target


class LocalTarget(Target):
    """No export state: the path is the export. os-brick's LocalConnector reads `device_path`."""

    @property
    def protocol(self) -> str:
        return "local"

    def ensure_export(
        self, volume_id: str, path: str, size_gb: int, provider_auth: str | None = None
    ) -> str | None:
        return None

    def initialize_connection(
        self, volume_id: str, path: str, provider_auth: str | None, connector: Connector
    ) -> ConnectionInfo:
        return ConnectionInfo(driver_volume_type="local", data={"device_path": path})

    def remove_export(self, volume_id: str) -> None:
        return None

    def export_exists(self, volume_id: str) -> bool:
        # Nothing is held on the volume's behalf, so there is never anything to withdraw or restore.
        return False

    def list_exports(self) -> frozenset[str]:
        return frozenset()
