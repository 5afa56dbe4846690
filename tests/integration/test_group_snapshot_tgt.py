"""The write barrier of a consistent group snapshot over iSCSI: tgt targets offline during the clones.

Needs root and tgt (as test_tgt_iscsi.py, whose fixtures are reused).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cinderblock.volume.driver import SnapshotRef
from cinderblock.volume.drivers.file import consistency
from cinderblock.volume.drivers.file.driver import FileDriver
from tests.integration.test_tgt_iscsi import CONNECTOR, apply, make_driver, tgtadm, tgtd, vref  # noqa: F401

pytestmark = pytest.mark.root


def target_states() -> dict[str, str]:
    """iqn → State of every tgt target."""
    out = tgtadm("--op", "show", "--mode", "target").stdout
    states, current = {}, None
    for line in out.splitlines():
        header = re.match(r"^Target \d+: (\S+)", line)
        if header:
            current = header.group(1)
        elif current and line.strip().startswith("State:"):
            states[current] = line.split(":", 1)[1].strip()
    return states


def test_targets_are_offline_only_while_cloning(tgtd: None, tmp_path: Path,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    driver: FileDriver = make_driver(tmp_path)
    volumes = []
    try:
        for _ in range(2):
            volume = vref()
            volume = apply(volume, driver.create_volume(volume))
            volume = apply(volume, driver.create_export(volume, CONNECTOR))
            volumes.append(volume)
        iqns = [driver.target.iqn(v.id) for v in volumes]  # type: ignore[attr-defined]
        assert all(target_states()[iqn] == "ready" for iqn in iqns)
        seen: list[dict[str, str]] = []
        real = consistency.copy.clone_file

        def spying(src: str, dst: str, progress: Any) -> str:
            seen.append(target_states())
            return real(src, dst, progress)

        monkeypatch.setattr(consistency.copy, "clone_file", spying)
        refs = [SnapshotRef(id=f"s{i}-{v.id[:8]}", volume=v, size_gb=1) for i, v in enumerate(volumes)]
        result = driver.create_group_snapshot(refs)
        assert len(seen) == 2 and all(states[iqn] == "offline" for states in seen for iqn in iqns)
        assert all(target_states()[iqn] == "ready" for iqn in iqns)
        assert result.write_pause_ms > 0
        assert all(Path(u.provider_location or "").is_file() for u in result.updates)
    finally:
        for volume in volumes:
            driver.remove_export(volume)
