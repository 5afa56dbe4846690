"""Start one or two throw-away single-node Ceph clusters on loopback, for development and tests.

Each cluster lives in its own directory (`<dir>/<name>/`): one monitor on a free loopback port, one
OSD on the in-memory object store (memstore), one manager, a pool `rbd` initialised for RBD. With
`--pair` two clusters `site-a` and `site-b` are started, their pools peered for rbd-mirror in image
mode (two-way, `rx-tx`) and one `rbd-mirror` daemon runs per cluster. Nothing is written outside
`<dir>`: daemons find `<name>.conf` through their working directory (Ceph's default search path
ends with `$cluster.conf`), so `/etc/ceph` stays untouched.

    python -m cinderblock.devtools.ceph_cluster start --pair --dir /tmp/cb-ceph
    python -m cinderblock.devtools.ceph_cluster env --dir /tmp/cb-ceph     # shell exports
    python -m cinderblock.devtools.ceph_cluster stop --dir /tmp/cb-ceph

`scripts/ceph-clusters` wraps this module. Memstore keeps data in the OSD's memory: stopping or
killing an OSD loses its cluster's images (stopping the monitor, manager or mirror daemon does not).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinderblock.devtools import launch

DEFAULT_DIR = os.environ.get("CINDERBLOCK_CEPH_DIR", "/tmp/cinderblock-ceph")
POOL = "rbd"
SITES = ("site-a", "site-b")
REQUIRED_TOOLS = ("ceph-mon", "ceph-osd", "ceph-mgr", "rbd-mirror", "ceph", "rbd", "ceph-authtool", "monmaptool")
DAEMONS = ("mon", "osd", "mgr", "rbd-mirror")


class ClusterError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """The Ceph programs this tool needs that are not on PATH (empty: all there)."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """One cluster's directory and what a client needs to reach it."""

    name: str
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / f"{self.name}.conf"

    @property
    def keyring(self) -> Path:
        return self.root / "keyring"

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.root / "cluster.json").read_text())
        return info

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def pid(self, daemon: str) -> int | None:
        try:
            pid = int(self.pid_file(daemon).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if launch.alive(pid) else None

    # -- running ceph commands against this cluster --------------------------------------------

    def _args(self) -> list[str]:
        return ["--cluster", self.name, "-c", str(self.conf), "--id", "admin"]

    def run(self, program: str, *args: str, timeout: float = 60.0, stdin: str | None = None) -> str:
        cmd = [program, *self._args(), *args]
        done = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout, input=stdin)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def ceph(self, *args: str, timeout: float = 60.0) -> str:
        return self.run("ceph", *args, timeout=timeout)

    def rbd(self, *args: str, timeout: float = 60.0, stdin: str | None = None) -> str:
        return self.run("rbd", *args, timeout=timeout, stdin=stdin)

    def spawn(self, daemon: str, cmd: Sequence[str]) -> int:
        """Start a daemon in the foreground of its own session; remember its pid."""
        log = open(self.root / "log" / f"{daemon}.out", "ab")  # noqa: SIM115 -- handed to the child
        try:
            proc = subprocess.Popen(list(cmd), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.pid_file(daemon).write_text(str(proc.pid))
        return proc.pid

    def daemon_cmd(self, daemon: str) -> list[str]:
        base = ["--cluster", self.name, "-c", str(self.conf), "-f"]
        if daemon == "mon":
            return ["ceph-mon", *base, "-i", "a"]
        if daemon == "osd":
            return ["ceph-osd", *base, "-i", "0"]
        if daemon == "mgr":
            return ["ceph-mgr", *base, "-i", "x"]
        if daemon == "rbd-mirror":
            return ["rbd-mirror", "--cluster", self.name, "--id", "admin", "-f"]
        raise ClusterError(f"unknown daemon {daemon!r}")

    def start_daemon(self, daemon: str) -> int:
        pid = self.pid(daemon)
        if pid is not None:
            return pid
        return self.spawn(daemon, self.daemon_cmd(daemon))

    def kill(self, daemon: str, sig: int = signal.SIGKILL) -> None:
        """Send sig to one daemon (tests use it to simulate a lost site)."""
        pid = self.pid(daemon)
        if pid is not None:
            os.kill(pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                launch.wait_dead(pid, 10.0)

    def stop(self) -> None:
        for daemon in reversed(DAEMONS):
            pid = self.pid(daemon)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            if not launch.wait_dead(pid, 10.0):
                os.kill(pid, signal.SIGKILL)
                launch.wait_dead(pid, 5.0)

    def status(self) -> dict[str, object]:
        return {"name": self.name, "conf": str(self.conf), "keyring": str(self.keyring),
                "port": self.port, "daemons": {d: self.pid(d) for d in DAEMONS}}


def _wait(what: str, check, timeout: float, interval: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (ClusterError, subprocess.TimeoutExpired) as exc:
            last = exc
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else ""))


CONF_TEMPLATE = """\
[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{port}
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {root}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
ms bind msgr2 = false
run dir = {root}/run
log file = {root}/log/$name.log
admin socket = {root}/run/$cluster-$name.$pid.$cctid.asok
mon data = {root}/mon
osd data = {root}/osd
mgr data = {root}/mgr
osd max object name len = 256
osd max object namespace len = 64
osd op num shards = 1
osd op num threads per shard = 2
mon osd full ratio = .99
mon osd backfillfull ratio = .99
mon osd nearfull ratio = .99
osd client watch timeout = 6
rbd mirror pool replayers refresh interval = 2
rbd mirror leader heartbeat interval = 1
rbd mirror leader max missed heartbeats = 2
rbd mirror leader max acquire attempts before break = 2
rbd mirror delete retry interval = 2
rbd mirror image policy update throttle interval = 0.5
rbd mirror image state check interval = 5
rbd mirror journal poll age = 1
rbd mirror sync point update age = 5
rbd mirror concurrent image syncs = 16
rbd mirror concurrent image deletions = 16
mgr stats period = 1
mon_pg_warn_min_per_osd = 0

[client]
# Bounded client operations: rbd-mirror's journal replayer otherwise waits forever on a dead peer
# and keeps the lock of an image force-promoted here.
rados osd op timeout = 8
rados mon op timeout = 8

[mon.a]
keyring = {root}/mon-keyring

[osd.0]
keyring = {root}/osd/keyring

[mgr.x]
keyring = {root}/mgr/keyring
"""


def create_cluster(base: Path, name: str, memstore_bytes: int = 2 * 1024**3, timeout: float = 90.0) -> Cluster:
    """Make, start and wait for a one-OSD cluster with an RBD pool `rbd`."""
    root = base / name
    if root.exists():
        old = Cluster(name, root)
        if (root / "cluster.json").exists():
            old.stop()
        shutil.rmtree(root)
    for sub in ("run", "log", "mon", "osd", "mgr"):
        (root / sub).mkdir(parents=True)
    cluster = Cluster(name, root)
    fsid, port = str(uuid.uuid4()), _free_port()
    cluster.conf.write_text(CONF_TEMPLATE.format(fsid=fsid, port=port, root=root, memstore_bytes=memstore_bytes))
    (root / "cluster.json").write_text(json.dumps({"name": name, "fsid": fsid, "port": port, "pool": POOL}))

    def tool(*cmd: str) -> None:
        done = subprocess.run(list(cmd), cwd=root, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}")

    mon_keyring = str(root / "mon-keyring")
    tool("ceph-authtool", "--create-keyring", mon_keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
    tool("ceph-authtool", "--create-keyring", str(cluster.keyring), "--gen-key", "-n", "client.admin",
         "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr", "allow *")
    tool("ceph-authtool", mon_keyring, "--import-keyring", str(cluster.keyring))
    monmap = str(root / "monmap")
    tool("monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{port}]", "--fsid", fsid, monmap)
    tool("ceph-mon", "--cluster", name, "-c", str(cluster.conf), "--mkfs", "-i", "a",
         "--monmap", monmap, "--keyring", mon_keyring)
    cluster.start_daemon("mon")
    _wait("the monitor", lambda: cluster.ceph("mon", "stat", timeout=10), timeout)
    osd_id = cluster.ceph("osd", "create").strip()
    if osd_id != "0":
        raise ClusterError(f"expected osd id 0, got {osd_id!r}")
    tool("ceph-osd", "--cluster", name, "-c", str(cluster.conf), "-i", "0", "--mkfs", "--mkkey", "--no-mon-config")
    cluster.ceph("auth", "add", "osd.0", "osd", "allow *", "mon", "allow profile osd", "mgr", "allow profile osd",
                 "-i", str(root / "osd" / "keyring"))
    cluster.start_daemon("osd")
    (root / "mgr" / "keyring").write_text(
        cluster.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"))
    cluster.start_daemon("mgr")
    _wait("the OSD to come up", lambda: '"num_up_osds":1' in cluster.ceph("osd", "stat", "-f", "json")
          .replace(" ", ""), timeout)
    cluster.ceph("osd", "pool", "create", POOL, "8", "8")
    cluster.ceph("osd", "pool", "application", "enable", POOL, "rbd")
    cluster.rbd("pool", "init", POOL)
    return cluster


def peer(a: Cluster, b: Cluster) -> None:
    """Image-mode mirroring of `rbd` between a and b, both directions, one rbd-mirror each."""
    for cluster in (a, b):
        cluster.rbd("mirror", "pool", "enable", POOL, "image", "--site-name", cluster.name)
    token = a.rbd("mirror", "pool", "peer", "bootstrap", "create", "--site-name", a.name, POOL)
    token_file = b.root / "peer-token"
    token_file.write_text(token)
    b.rbd("mirror", "pool", "peer", "bootstrap", "import", "--site-name", b.name, "--direction", "rx-tx",
          POOL, str(token_file))
    token_file.unlink()
    for cluster in (a, b):
        cluster.start_daemon("rbd-mirror")


def wait_mirror_healthy(clusters: Sequence[Cluster], timeout: float = 60.0) -> None:
    """Until every cluster's pool shows a running mirror daemon and a peer."""
    def ok() -> bool:
        for cluster in clusters:
            status = json.loads(cluster.rbd("mirror", "pool", "status", POOL, "--verbose", "--format", "json",
                                            timeout=15))
            daemons = status.get("daemons") or []
            if not daemons or not all(d.get("health") == "OK" for d in daemons):
                return False
        return True
    _wait("rbd-mirror daemons", ok, timeout, interval=0.5)


def start(base: Path, pair: bool) -> list[Cluster]:
    if missing := missing_tools():
        raise ClusterError("Ceph programs missing: " + ", ".join(missing) +
                           " (Debian: apt-get install ceph-mon ceph-osd ceph-mgr rbd-mirror ceph-common)")
    base.mkdir(parents=True, exist_ok=True)
    names = SITES if pair else SITES[:1]
    clusters = []
    try:
        for name in names:
            clusters.append(create_cluster(base, name))
        if pair:
            peer(clusters[0], clusters[1])
            wait_mirror_healthy(clusters)
    except BaseException:
        for cluster in clusters:
            cluster.stop()
        raise
    return clusters


def existing(base: Path) -> list[Cluster]:
    return [Cluster(name, base / name) for name in SITES if (base / name / "cluster.json").exists()]


def stop(base: Path, remove: bool = True) -> None:
    for cluster in existing(base):
        cluster.stop()
    if remove and base.exists():
        for name in SITES:
            shutil.rmtree(base / name, ignore_errors=True)


def env_lines(base: Path) -> list[str]:
    lines = []
    for cluster in existing(base):
        key = cluster.name.replace("-", "_").upper()
        lines.append(f"export CINDERBLOCK_CEPH_{key}_CONF={cluster.conf}")
    if lines:
        lines.append(f"export CINDERBLOCK_CEPH_DIR={base}")
    return lines


def example_config(base: Path) -> str:
    clusters = existing(base)
    if not clusters:
        return ""
    lines = ["[rbd-1]", "volume_driver = rbd", "volume_backend_name = rbd-1", f"rbd_pool = {POOL}",
             "rbd_user = admin", f"rbd_ceph_conf = {clusters[0].conf}", f"rbd_cluster_name = {clusters[0].name}"]
    for cluster in clusters[1:]:
        lines.append(f"replication_device = backend_id:{cluster.name}, conf:{cluster.conf}, user:admin")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ceph-clusters", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("start", "stop", "status", "env"):
        p = sub.add_parser(command)
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"where clusters live (default {DEFAULT_DIR})")
        if command == "start":
            p.add_argument("--pair", action="store_true", help="two clusters mirrored by rbd-mirror")
    args = parser.parse_args(argv)
    base = Path(args.dir).resolve()
    try:
        if args.command == "start":
            began = time.monotonic()
            clusters = start(base, args.pair)
            print(f"started {', '.join(c.name for c in clusters)} in {time.monotonic() - began:.1f}s under {base}",
                  file=sys.stderr)
            print("\n".join(env_lines(base)))
            print("# cinderblock.conf backend section:\n# " + example_config(base).replace("\n", "\n# "))
        elif args.command == "stop":
            stop(base)
        elif args.command == "status":
            print(json.dumps([c.status() for c in existing(base)], indent=2))
        elif args.command == "env":
            print("\n".join(env_lines(base)))
    except ClusterError as exc:
        print(f"ceph-clusters: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
