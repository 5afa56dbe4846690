"""Target helpers: how a driver whose volumes are local files/devices makes them reachable.

A helper is chosen per backend by the common `target_helper` option. It only knows a volume id,
the path of the volume's storage and the options; drivers own the storage itself.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import ConnectionInfo, Connector

TARGET_HELPERS = ("local", "tgtadm")


class WriteHold:
    """New I/O to some exports held back for a moment (a consistent group snapshot's barrier).

    This base holds nothing: exports whose consumers open the file directly have nothing to hold."""

    def hold(self, volume_id: str) -> None:
        """Stop serving I/O of the volume's export (if it has one) until release."""

    def release(self) -> None:
        """Serve every held export again. Never raises: a failure is logged, never left silent."""

    @property
    def held(self) -> bool:
        """Some export is held now."""
        return False


class Target(abc.ABC):
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    @property
    @abc.abstractmethod
    def protocol(self) -> str:
        """`storage_protocol` the backend reports ("local", "iSCSI")."""

    def check_for_setup_error(self) -> None:
        """Raise DriverError when the helper cannot work on this host."""
        return None

    @abc.abstractmethod
    def ensure_export(
        self, volume_id: str, path: str, size_gb: int, provider_auth: str | None = None
    ) -> str | None:
        """Export path (idempotent). Returns the provider_auth to persist (e.g. "CHAP user pass").

        provider_auth is what was persisted by an earlier call: reusing it keeps credentials stable.
        """

    @abc.abstractmethod
    def initialize_connection(
        self, volume_id: str, path: str, provider_auth: str | None, connector: Connector
    ) -> ConnectionInfo:
        """Connection info for an exported volume."""

    @abc.abstractmethod
    def remove_export(self, volume_id: str) -> None:
        """Withdraw the export; none is not an error."""

    @abc.abstractmethod
    def export_exists(self, volume_id: str) -> bool:
        """True when the helper holds an export of the volume."""

    @abc.abstractmethod
    def list_exports(self) -> frozenset[str]:
        """Ids of every volume the helper holds an export of (recovery removes orphans)."""

    def refresh_export(self, volume_id: str, path: str) -> None:
        """The file behind an export was replaced or resized: make the export serve the new one."""
        return None

    def write_hold(self, volume_ids: Sequence[str]) -> WriteHold:
        """A hold over the exports of volume_ids, found now (nothing is held before `hold`)."""
        return WriteHold()


class UnavailableTarget(Target):
    """Stands for a helper that could not be made (unknown `target_helper`...): every use raises
    the error, so the backend fails at do_setup and never serves through it."""

    def __init__(self, options: Mapping[str, Any], error: DriverError) -> None:
        super().__init__(options)
        self.error = error

    def _fail(self) -> NoReturn:
        raise self.error

    @property
    def protocol(self) -> str:
        self._fail()

    def check_for_setup_error(self) -> None:
        self._fail()

    def ensure_export(
        self, volume_id: str, path: str, size_gb: int, provider_auth: str | None = None
    ) -> str | None:
        self._fail()

    def initialize_connection(
        self, volume_id: str, path: str, provider_auth: str | None, connector: Connector
    ) -> ConnectionInfo:
        self._fail()

    def remove_export(self, volume_id: str) -> None:
        self._fail()

    def export_exists(self, volume_id: str) -> bool:
        self._fail()

    def list_exports(self) -> frozenset[str]:
        self._fail()

    def refresh_export(self, volume_id: str, path: str) -> None:
        self._fail()

    def write_hold(self, volume_ids: Sequence[str]) -> WriteHold:
        self._fail()


def parse_chap(provider_auth: str | None) -> tuple[str, str] | None:
    """Cinder's provider_auth format: "CHAP <user> <password>"."""
    if not provider_auth:
        return None
    parts = provider_auth.split()
    if len(parts) != 3 or parts[0].upper() != "CHAP":
        raise DriverError(f"unsupported provider_auth format {parts[0] if parts else ''!r}")
    return parts[1], parts[2]


def make_target(helper: str, options: Mapping[str, Any]) -> Target:
    """The helper named by the `target_helper` option."""
    # Imported here: the helpers import this module.
    if helper == "local":
        from cinderblock.volume.targets.local import LocalTarget

        return LocalTarget(options)
    if helper == "tgtadm":
        from cinderblock.volume.targets.tgt import TgtAdm

        return TgtAdm(options)
    raise DriverError(f"unsupported target_helper {helper!r}; supported: {', '.join(TARGET_HELPERS)}")
