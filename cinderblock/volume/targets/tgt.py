"""The "tgtadm" helper: one iSCSI target per exported volume in a running tgtd (scsi-target-utils).

tgtd holds the export state, so exports survive restarts of our service and `export_exists`
asks tgtd rather than remembering. Layout per volume, as Cinder's TgtAdm does it:
IQN `<target_prefix>volume-<id>`, LUN 1 backed by the volume's file, initiator ACL ALL and,
with `use_chap_auth`, one incoming CHAP account bound to the target.
"""
from __future__ import annotations

import logging
import re
import secrets
import string
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import ConnectionInfo, Connector
from cinderblock.volume.targets.base import Target, WriteHold, parse_chap

LOG = logging.getLogger(__name__)

DEFAULT_PREFIX = "iqn.2010-10.org.openstack:"
LUN = 1
# tgtd is one per host, shared by every backend in this process: serialise tid allocation.
_LOCK = threading.Lock()
_ALNUM = string.ascii_letters + string.digits
_TARGET_RE = re.compile(r"^Target (\d+): (\S+)\s*$")


@dataclass
class TgtTarget:
    tid: int
    iqn: str
    backing: dict[int, str] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    nexus: int = 0


def parse_targets(output: str) -> list[TgtTarget]:
    """Parse `tgtadm --lld iscsi --op show --mode target`."""
    targets: list[TgtTarget] = []
    current: TgtTarget | None = None
    section = ""
    lun: int | None = None
    for line in output.splitlines():
        match = _TARGET_RE.match(line)
        if match:
            current = TgtTarget(tid=int(match.group(1)), iqn=match.group(2))
            targets.append(current)
            section, lun = "", None
            continue
        if current is None or not line.strip():
            continue
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent == 4 and stripped.endswith(":"):
            section = stripped[:-1]
            continue
        if section == "LUN information" and stripped.startswith("LUN:"):
            lun = int(stripped.split(":", 1)[1])
        elif section == "LUN information" and stripped.startswith("Backing store path:") and lun is not None:
            path = stripped.split(":", 1)[1].strip()
            if path and path != "None":
                current.backing[lun] = path
        elif section == "Account information" and indent == 8:
            if not stripped.endswith("(outgoing)"):
                current.accounts.append(stripped)
        elif section == "I_T nexus information" and stripped.startswith("I_T nexus:"):
            current.nexus += 1
    return targets


def _random(length: int) -> str:
    # Letters and digits only: credentials travel in libiscsi URLs and tgtadm argv.
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class TgtAdm(Target):
    @property
    def protocol(self) -> str:
        return "iSCSI"

    # -- options -----------------------------------------------------------------------------

    def _opt(self, key: str, default: Any) -> Any:
        value = self.options.get(key)
        return default if value is None else value

    def iqn(self, volume_id: str) -> str:
        return f"{self._opt('target_prefix', DEFAULT_PREFIX)}volume-{volume_id}"

    @property
    def _use_chap(self) -> bool:
        return bool(self._opt("use_chap_auth", True))

    @property
    def _configured_chap(self) -> tuple[str, str] | None:
        user, password = self.options.get("chap_username"), self.options.get("chap_password")
        return (str(user), str(password)) if user and password else None

    # -- tgtadm ------------------------------------------------------------------------------

    def _run(self, *args: str, secret: str | None = None) -> str:
        cmd = ["tgtadm", "--lld", "iscsi", *args]
        shown = " ".join("***" if secret is not None and a == secret else a for a in cmd)
        LOG.debug("running %s", shown)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except FileNotFoundError as exc:
            raise DriverError("tgtadm not found: install the tgt (scsi-target-utils) package") from exc
        except subprocess.TimeoutExpired as exc:
            raise DriverError(f"{shown} timed out") from exc
        if proc.returncode != 0:
            raise DriverError(f"{shown} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def _set_state(self, tid: int, state: str) -> None:
        self._run("--op", "update", "--mode", "target", "--tid", str(tid), "--name", "state", "-v", state)

    def _targets(self) -> list[TgtTarget]:
        return parse_targets(self._run("--op", "show", "--mode", "target"))

    def _find(self, volume_id: str, targets: Sequence[TgtTarget] | None = None) -> TgtTarget | None:
        iqn = self.iqn(volume_id)
        for target in targets if targets is not None else self._targets():
            if target.iqn == iqn:
                return target
        return None

    def _accounts(self) -> set[str]:
        out = self._run("--op", "show", "--mode", "account")
        return {line.strip() for line in out.splitlines()[1:] if line.strip()}

    def check_for_setup_error(self) -> None:
        try:
            self._targets()
        except DriverError as exc:
            raise DriverError(
                f"tgtd is not running or not reachable (tgtadm --op show --mode target failed: {exc.message})"
            ) from exc

    # -- exports -----------------------------------------------------------------------------

    def ensure_export(
        self, volume_id: str, path: str, size_gb: int, provider_auth: str | None = None
    ) -> str | None:
        creds, known = self._credentials(provider_auth)
        with _LOCK:
            targets = self._targets()
            target = self._find(volume_id, targets)
            if target is None:
                target = self._create_target(self.iqn(volume_id), path, targets)
                targets.append(target)
            elif target.backing.get(LUN) != path:
                self._replace_lun(target.tid, path)
            self._set_accounts(target, targets, creds, known)
        return f"CHAP {creds[0]} {creds[1]}" if creds else None

    def _credentials(self, provider_auth: str | None) -> tuple[tuple[str, str] | None, bool]:
        """(user, password) to use and whether tgtd may already know them (False: fresh random)."""
        if not self._use_chap:
            return None, True
        persisted = parse_chap(provider_auth)
        if persisted:
            return persisted, True
        configured = self._configured_chap
        if configured:
            return configured, True
        # Cinder's lengths: 20-character user, 16-character secret.
        return (_random(20), _random(16)), False

    def _create_target(self, iqn: str, path: str, targets: list[TgtTarget]) -> TgtTarget:
        used = {t.tid for t in targets}
        tid = 1
        for _attempt in range(10):
            while tid in used:
                tid += 1
            try:
                self._run("--op", "new", "--mode", "target", "--tid", str(tid), "--targetname", iqn)
                break
            except DriverError as exc:
                # Another process took that tid between our show and new: try the next one.
                if "already exists" not in exc.message:
                    raise
                used.add(tid)
        else:
            raise DriverError(f"could not allocate a tgt target id for {iqn}")
        try:
            self._run("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(LUN),
                      "--backing-store", path)
            self._run("--op", "bind", "--mode", "target", "--tid", str(tid), "--initiator-address", "ALL")
        except DriverError:
            self._delete_target(tid)  # no half-made target left behind
            raise
        LOG.info("exported %s as %s (tid %d)", path, iqn, tid)
        return TgtTarget(tid=tid, iqn=iqn, backing={LUN: path})

    def _replace_lun(self, tid: int, path: str) -> None:
        # tgtd keeps the backing file open and caches its size: re-open to serve the current file.
        try:
            self._run("--op", "delete", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(LUN))
        except DriverError as exc:
            if "can't find" not in exc.message:
                raise
        self._run("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(LUN),
                  "--backing-store", path)

    def _set_accounts(
        self, target: TgtTarget, targets: list[TgtTarget], creds: tuple[str, str] | None, known: bool
    ) -> None:
        wanted = creds[0] if creds else None
        for stale in [a for a in target.accounts if a != wanted or not known]:
            # A bound account whose secret we do not hold (or CHAP turned off): replace it.
            self._run("--op", "unbind", "--mode", "account", "--tid", str(target.tid), "--user", stale)
            target.accounts.remove(stale)
            self._delete_account_if_unused(stale, targets)
        if creds is None or wanted in target.accounts:
            return
        user, password = creds
        if user not in self._accounts():
            self._run("--op", "new", "--mode", "account", "--user", user, "--password", password, secret=password)
        self._run("--op", "bind", "--mode", "account", "--tid", str(target.tid), "--user", user)
        target.accounts.append(user)

    def _delete_account_if_unused(self, user: str, targets: Sequence[TgtTarget]) -> None:
        if any(user in t.accounts for t in targets):
            return  # shared (configured chap_username) and still bound elsewhere
        try:
            self._run("--op", "delete", "--mode", "account", "--user", user)
        except DriverError as exc:
            if "can't find" not in exc.message:
                raise

    def _delete_target(self, tid: int) -> None:
        try:
            self._run("--op", "delete", "--mode", "target", "--tid", str(tid), "--force")
        except DriverError as exc:
            if "can't find" not in exc.message:
                raise

    def remove_export(self, volume_id: str) -> None:
        with _LOCK:
            targets = self._targets()
            target = self._find(volume_id, targets)
            if target is None:
                return
            self._delete_target(target.tid)
            others = [t for t in targets if t.tid != target.tid]
            for user in target.accounts:
                self._delete_account_if_unused(user, others)
        LOG.info("removed export %s (tid %d)", target.iqn, target.tid)

    def export_exists(self, volume_id: str) -> bool:
        return self._find(volume_id) is not None

    def list_exports(self) -> frozenset[str]:
        # tgtd is shared by every backend of the host: these are the ids under our IQN prefix.
        prefix = self.iqn("")
        return frozenset(t.iqn[len(prefix):] for t in self._targets() if t.iqn.startswith(prefix))

    def refresh_export(self, volume_id: str, path: str) -> None:
        with _LOCK:
            target = self._find(volume_id)
            if target is not None:
                self._replace_lun(target.tid, path)

    def write_hold(self, volume_ids: Sequence[str]) -> WriteHold:
        """Holds a target by setting it offline: initiators see it busy and retry until `ready`."""
        targets = self._targets()
        tids = {}
        for volume_id in volume_ids:
            match = self._find(volume_id, targets)
            if match is not None:
                tids[volume_id] = match.tid
        return _TgtWriteHold(self._set_state, tids)

    def initialize_connection(
        self, volume_id: str, path: str, provider_auth: str | None, connector: Connector
    ) -> ConnectionInfo:
        if self._find(volume_id) is None:
            raise DriverError(f"volume {volume_id} is not exported by tgtd; create_export first")
        data: dict[str, Any] = {
            "target_discovered": False,
            "target_iqn": self.iqn(volume_id),
            "target_portal": f"{self._opt('target_ip_address', '127.0.0.1')}:{self._opt('target_port', 3260)}",
            "target_lun": LUN,
            "volume_id": volume_id,
        }
        if self._use_chap:
            creds = parse_chap(provider_auth)
            if creds is None:
                raise DriverError(f"volume {volume_id} has no CHAP credentials; create_export first")
            data.update(auth_method="CHAP", auth_username=creds[0], auth_password=creds[1])
        data.update(encrypted=False, qos_specs=None, access_mode="rw")
        return ConnectionInfo(driver_volume_type="iscsi", data=data)


class _TgtWriteHold(WriteHold):
    """tgt targets (by tid, looked up once) set offline one by one, and back to ready."""

    def __init__(self, set_state: Callable[[int, str], None], tids: dict[str, int]) -> None:
        self._set_state = set_state
        self._tids = tids
        self._offline: list[int] = []

    def hold(self, volume_id: str) -> None:
        tid = self._tids.get(volume_id)
        if tid is not None:
            self._set_state(tid, "offline")
            self._offline.append(tid)

    def release(self) -> None:
        for tid in self._offline:
            try:
                self._set_state(tid, "ready")
            except DriverError as error:  # never leave a target offline silently
                LOG.error("could not bring tgt target %d back online: %s", tid, error)
        self._offline = []

    @property
    def held(self) -> bool:
        return bool(self._offline)
