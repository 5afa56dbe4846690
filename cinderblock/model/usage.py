"""Which quota resources a volume or snapshot uses (Cinder's names, including per-type ones)."""
from __future__ import annotations


def volume_usage(size_gb: int, type_name: str | None) -> dict[str, int]:
    usage = {"volumes": 1, "gigabytes": size_gb}
    if type_name:
        usage.update({f"volumes_{type_name}": 1, f"gigabytes_{type_name}": size_gb})
    return usage


def snapshot_usage(size_gb: int, type_name: str | None) -> dict[str, int]:
    usage = {"snapshots": 1, "gigabytes": size_gb}
    if type_name:
        usage.update({f"snapshots_{type_name}": 1, f"gigabytes_{type_name}": size_gb})
    return usage


def extend_usage(delta_gb: int, type_name: str | None) -> dict[str, int]:
    usage = {"gigabytes": delta_gb}
    if type_name:
        usage[f"gigabytes_{type_name}"] = delta_gb
    return usage
