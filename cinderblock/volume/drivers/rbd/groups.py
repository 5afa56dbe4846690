"""Group capabilities of the RBD driver (consistent group snapshots are not implemented yet: the
manager falls back to one-by-one snapshots and marks the group snapshot as not consistent)."""
from __future__ import annotations

from typing import Any


class RBDGroupSnapshots:
    def _group_capabilities(self) -> dict[str, Any]:
        return {"consistent_group_snapshot_enabled": False}
