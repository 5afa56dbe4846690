"""On-disk protocol of a replica directory: how a copy in flight is told from a complete one.

A destination directory D (a pool's directory on a replication site) holds, per volume v:
- `D/volume-<v>`: the last complete copy (the file served after a failover to that site);
- `D/.replication/volume-<v>.json`: its manifest (generation, `taken_at` = the wall-clock instant
  the copy holds, size, digest of every data chunk). No manifest: no complete copy (a site serving
  the volume itself never has one).

Sending generation G to D goes through three on-disk states:
1. staging (never trusted): `volume-<v>.<G>.stage` (either a whole new file: reflink of the
   complete copy plus the changed chunks, or a fresh sparse file; or a redo log of the changed
   chunks when D cannot reflink) and `volume-<v>.<G>.prep.json` (the manifest to be);
2. committed: the prep file renamed to `volume-<v>.pending.json` (one rename: the commit point).
   For a consistency group, a record `group-<g>.<G>.commit.json` is written first and lists every
   member; recovery renames the members' prep files, so either all members or none commit;
3. rolled forward (idempotent, replayed by `recover`): the stage file renamed over `volume-<v>`
   or the redo log applied in place, then pending renamed over the manifest.
Everything in staging is removed by `recover`; a copy in flight therefore never replaces the last
complete one, and a failover (which recovers first) always lands on a complete generation.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cinderblock.volume.drivers.file import copy, extents

LOG = logging.getLogger(__name__)

META = ".replication"
TMP = ".tmp-"


def meta_dir(directory: Path) -> Path:
    return directory / META


def manifest_path(directory: Path, volume_id: str) -> Path:
    return directory / META / f"volume-{volume_id}.json"


def pending_path(directory: Path, volume_id: str) -> Path:
    return directory / META / f"volume-{volume_id}.pending.json"


def prep_path(directory: Path, volume_id: str, gen: int) -> Path:
    return directory / META / f"volume-{volume_id}.{gen}.prep.json"


def stage_path(directory: Path, volume_id: str, gen: int) -> Path:
    return directory / META / f"volume-{volume_id}.{gen}.stage"


def write_json(path: Path, payload: Mapping[str, Any], sync: bool = True) -> None:
    """Atomically (temp file, fsync, rename) write payload to path."""
    tmp = path.with_name(f"{TMP}{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w") as f:
            json.dump(payload, f, separators=(",", ":"))
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    return data


def read_manifest(directory: Path, volume_id: str) -> dict[str, Any] | None:
    """The manifest of the complete copy in directory, with int chunk keys; None: no complete copy."""
    data = read_json(manifest_path(directory, volume_id))
    if data is not None:
        data["digests"] = {int(k): v for k, v in data.get("digests", {}).items()}
    return data


def file_fingerprint(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def usable_manifest(directory: Path, volume_id: str) -> dict[str, Any] | None:
    """The manifest, if the copy is still exactly what replication left (same mtime/size/inode).

    A copy written behind replication's back (a consumer still attached to a site it no longer
    serves) does not match its digests any more: it gets a whole new copy, never a delta."""
    manifest = read_manifest(directory, volume_id)
    if manifest is None or manifest.get("dest_fp") != file_fingerprint(directory / f"volume-{volume_id}"):
        return None
    return manifest


def manifest_payload(manifest: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(manifest)
    out["digests"] = {str(k): v for k, v in manifest.get("digests", {}).items()}
    return out


class Staging:
    """One volume's generation in flight to one destination directory."""

    def __init__(self, directory: Path, volume_id: str, gen: int, base: dict[str, Any] | None,
                 size: int, reflink: bool) -> None:
        self.directory = directory
        self.volume_id = volume_id
        self.gen = gen
        self.size = size
        self.final = directory / f"volume-{volume_id}"
        # A copy without data (just created) is not worth a redo log: a fresh file is written once.
        usable = (base is not None and bool(base.get("digests")) and base.get("size", 0) <= size
                  and self.final.is_file())
        self.base_digests: dict[int, str] = dict(base["digests"]) if usable and base else {}
        self.fresh = not usable
        self.base_size = int(base["size"]) if usable and base else 0
        self.reflink = reflink
        self.kind = "none"
        self.entries: list[list[int]] = []  # redo log: [chunk index, offset in log, length (0: zeros)]
        self.sent = 0
        self.fd: int | None = None
        self._log_pos = 0
        self._touched: set[int] = set()
        self.failed: BaseException | None = None
        self.stage = stage_path(directory, volume_id, gen)
        if self.fresh or size != self.base_size:
            self._open()

    def _open(self) -> None:
        if self.fresh:
            self.kind = "full"
            self.fd = os.open(self.stage, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(self.fd, self.size)
        elif self.reflink and copy.reflink(str(self.final), str(self.stage)):
            self.kind = "full"
            self.fd = os.open(self.stage, os.O_RDWR)
            os.ftruncate(self.fd, self.size)
        else:
            self.kind = "delta"
            self.fd = os.open(self.stage, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def offer(self, index: int, data: bytes, digest: str | None) -> int:
        """Send the chunk if the destination's copy differs; returns the bytes sent."""
        self._touched.add(index)
        if self.base_digests.get(index) == digest or (self.fresh and digest is None):
            return 0
        if self.fd is None:
            self._open()
        assert self.fd is not None
        offset = index * extents.CHUNK
        if self.kind == "full":
            if digest is None:
                extents.punch_hole(self.fd, offset, len(data))
            else:
                extents.write_all(self.fd, data, offset)
        elif digest is None:
            self.entries.append([index, 0, 0])
        else:
            extents.write_all(self.fd, data, self._log_pos)
            self.entries.append([index, self._log_pos, len(data)])
            self._log_pos += len(data)
        sent = len(data) if digest is not None else 0
        self.sent += sent
        return sent

    def zero_rest(self) -> None:
        """Chunks the destination holds data in but the source no longer scanned (now holes)."""
        for index in sorted(set(self.base_digests) - self._touched):
            length = min(extents.CHUNK, self.size - index * extents.CHUNK)
            if length > 0:
                self.offer(index, bytes(length), None)

    def prepare(self, manifest: Mapping[str, Any]) -> None:
        """Make the stage durable and write the manifest-to-be (not committed yet)."""
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
        payload = manifest_payload(manifest)
        payload.update(kind=self.kind, stage=self.stage.name, entries=self.entries)
        write_json(prep_path(self.directory, self.volume_id, self.gen), payload)

    def abort(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        with contextlib.suppress(OSError):
            self.stage.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            prep_path(self.directory, self.volume_id, self.gen).unlink(missing_ok=True)


def commit(stagings: Sequence[Staging], record_dir: Path | None, group_id: str | None, gen: int) -> None:
    """Commit prepared stagings: one rename each, or all at once through a group record."""
    record: Path | None = None
    if group_id is not None and record_dir is not None and len(stagings) > 0:
        record = meta_dir(record_dir) / f"group-{group_id}.{gen}.commit.json"
        write_json(record, {"group": group_id, "gen": gen,
                            "members": [[str(s.directory), s.volume_id] for s in stagings]})
        copy.fsync_path(str(record.parent))
    for s in stagings:
        os.replace(prep_path(s.directory, s.volume_id, s.gen), pending_path(s.directory, s.volume_id))
    for directory in {s.directory for s in stagings}:
        copy.fsync_path(str(meta_dir(directory)))
    if record is not None:
        record.unlink(missing_ok=True)


def roll_forward(directory: Path, volume_id: str) -> bool:
    """Finish a committed generation (idempotent). True when there was one."""
    pending = pending_path(directory, volume_id)
    data = read_json(pending)
    if data is None:
        return False
    final = directory / f"volume-{volume_id}"
    stage_name = str(data.get("stage") or "")
    stage = meta_dir(directory) / (stage_name or f"{TMP}none")
    kind = data.get("kind")
    size = int(data["size"])
    if kind == "full" and stage.is_file():
        os.replace(stage, final)
    elif kind == "delta" and stage.is_file():
        fd = os.open(final, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            log = os.open(stage, os.O_RDONLY)
            try:
                for index, offset, length in data.get("entries", []):
                    at = index * extents.CHUNK
                    if length == 0:
                        extents.punch_hole(fd, at, min(extents.CHUNK, size - at))
                    else:
                        extents.write_all(fd, os.pread(log, length, offset), at)
            finally:
                os.close(log)
            os.fsync(fd)
        finally:
            os.close(fd)
    elif kind == "none" and final.is_file() and final.stat().st_size < size:
        os.truncate(final, size)
    for key in ("kind", "stage", "entries"):
        data.pop(key, None)
    data["dest_fp"] = file_fingerprint(final)
    write_json(manifest_path(directory, volume_id), data)
    pending.unlink(missing_ok=True)
    if stage_name:
        stage.unlink(missing_ok=True)
    return True


def recover(directories: Iterable[Path], record_dirs: Iterable[Path] = ()) -> int:
    """Replay committed generations, drop everything still in staging. Returns generations replayed."""
    for record_dir in record_dirs:
        meta = meta_dir(record_dir)
        if not meta.is_dir():
            continue
        for record in meta.glob("group-*.commit.json"):
            data = read_json(record) or {}
            gen = int(data.get("gen", -1))
            for directory, volume_id in data.get("members", []):
                prep = prep_path(Path(directory), volume_id, gen)
                if prep.exists():
                    os.replace(prep, pending_path(Path(directory), volume_id))
            record.unlink(missing_ok=True)
    replayed = 0
    for directory in directories:
        meta = meta_dir(directory)
        if not meta.is_dir():
            continue
        names = os.listdir(meta)
        for name in names:
            if name.endswith(".pending.json") and name.startswith("volume-"):
                replayed += roll_forward(directory, name[len("volume-"):-len(".pending.json")])
        for name in os.listdir(meta):
            if name.startswith(TMP) or name.endswith((".prep.json", ".stage")):
                LOG.info("removing unfinished replica staging %s", meta / name)
                with contextlib.suppress(FileNotFoundError):
                    (meta / name).unlink()
    return replayed


def remove_copy(directory: Path, volume_id: str) -> None:
    """Remove a volume's copy and every replication file of it from directory."""
    (directory / f"volume-{volume_id}").unlink(missing_ok=True)
    meta = meta_dir(directory)
    manifest_path(directory, volume_id).unlink(missing_ok=True)
    pending_path(directory, volume_id).unlink(missing_ok=True)
    if meta.is_dir():
        for path in meta.glob(f"volume-{volume_id}.*"):
            path.unlink(missing_ok=True)
