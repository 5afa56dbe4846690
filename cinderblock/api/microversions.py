"""Microversions: named constants, negotiation, and the per-route minimum."""
from __future__ import annotations

import re
from dataclasses import dataclass

from cinderblock.model.errors import InvalidInput

MIN = (3, 0)
MAX = (3, 71)
HEADER = "openstack-api-version"
SERVICE = "volume"

# Named versions the code checks (Cinder's api/microversions.py names).
BOOTABLE_STRICT = (3, 2)
MESSAGES = (3, 3)
GROUP_ID_FILTER = (3, 10)
VOLUME_SUMMARY = (3, 12)
GROUP_VOLUME = (3, 13)
VOLUME_DELETE_FORCE = (3, 23)
RESOURCE_FILTER = (3, 31)
LIKE_FILTER = (3, 34)
VOLUME_REVERT = (3, 40)
SNAPSHOT_USER_ID = (3, 41)
VOLUME_EXTEND_INUSE = (3, 42)
SUPPORT_COUNT_INFO = (3, 45)
SHARED_TARGETS = (3, 48)
STRICT_SCHEMAS = (3, 53)
SNAPSHOT_IN_USE = (3, 66)
TIME_FILTERS = (3, 60)
VOLUME_TYPE_ID = (3, 63)
CONSUMES_QUOTA = (3, 65)
SHARED_TARGETS_TRISTATE = (3, 69)

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class VersionNotAcceptable(Exception):
    """Outside [MIN, MAX]: 406 with Cinder's message."""

    def __init__(self, requested: str) -> None:
        super().__init__(f"Version {requested} is not supported by the API. Minimum is "
                         f"{fmt(MIN)} and maximum is {fmt(MAX)}.")
        self.requested = requested


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int

    def at_least(self, version: tuple[int, int]) -> bool:
        return (self.major, self.minor) >= version

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def negotiate(header: str | None) -> Version:
    """The version a request asks for. No header → 3.0; `latest` → MAX."""
    if header is None:
        return Version(*MIN)
    wanted = None
    for entry in header.split(","):
        parts = entry.strip().split()
        if parts and SERVICE in parts[0]:
            wanted = parts[1] if len(parts) > 1 else ""
            break
    if wanted is None:
        raise InvalidInput(f"Invalid OpenStack-API-Version header {header!r}: it names no '{SERVICE}' version.")
    if wanted == "latest":
        return Version(*MAX)
    match = _VERSION_RE.match(wanted)
    if match is None:
        raise InvalidInput(f"API Version String {wanted} is of invalid format. Must be of format "
                           f"MajorNum.MinorNum.")
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN <= version <= MAX:
        raise VersionNotAcceptable(wanted)
    return Version(*version)
