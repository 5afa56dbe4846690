"""Real Ceph for the RBD tests: two mirrored single-node clusters, started once per test session.

`ceph_pair(request)` returns the running pair (starting it on first use) and registers its teardown
at the end of the session, whichever conftest asks first. Without Ceph's programs or python bindings
the RBD tests skip on a developer machine and FAIL when CI or CINDERBLOCK_REQUIRE_CEPH is set.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cinderblock.devtools import ceph_cluster

_lock = threading.Lock()
_pair: CephPair | None = None
_error: str | None = None


@dataclass
class CephPair:
    base: Path
    a: ceph_cluster.Cluster
    b: ceph_cluster.Cluster

    def options(self, pool: str = "rbd", **extra: Any) -> dict[str, Any]:
        """Driver options for a backend whose primary is site-a, replicated to site-b."""
        options = {
            "volume_backend_name": "rbd-backend",
            "rbd_pool": pool,
            "rbd_user": "admin",
            "rbd_ceph_conf": str(self.a.conf),
            "rbd_cluster_name": self.a.name,
            "reserved_percentage": 5,
            "max_over_subscription_ratio": "20.0",
            "replication_connect_timeout": 3,
            "replication_interval": 60,
            "rbd_failover_promote_timeout": 60,
        }
        options.update(extra)
        return options

    def replication_device(self) -> str:
        return f"backend_id:{self.b.name}, conf:{self.b.conf}, user:admin"

    def restart(self, cluster: ceph_cluster.Cluster) -> None:
        """Bring back killed daemons (not the OSD: memstore would lose its data) and wait for them."""
        for daemon in ("mon", "mgr", "rbd-mirror"):
            cluster.start_daemon(daemon)
        ceph_cluster._wait("the monitor", lambda: cluster.ceph("mon", "stat", timeout=10), 60)


def ceph_missing() -> str | None:
    missing = ceph_cluster.missing_tools()
    try:
        import rados  # type: ignore[import-not-found] # noqa: F401
        import rbd  # type: ignore[import-not-found] # noqa: F401
    except ImportError:
        missing.append("python3-rados/python3-rbd in the venv (scripts/install --test)")
    return ", ".join(missing) or None


def require_ceph() -> None:
    missing = ceph_missing()
    if missing is None:
        return
    message = f"Ceph is not installed ({missing}); scripts/install --test installs it as root"
    if os.environ.get("CI") or os.environ.get("CINDERBLOCK_REQUIRE_CEPH"):
        pytest.fail(message + " -- CI/CINDERBLOCK_REQUIRE_CEPH is set, so this is a failure")
    pytest.skip(message)


def ceph_pair(request: pytest.FixtureRequest) -> CephPair:
    global _pair, _error
    require_ceph()
    with _lock:
        if _error is not None:
            pytest.fail(f"the Ceph clusters did not start: {_error}")
        if _pair is None:
            base = Path(tempfile.mkdtemp(prefix="cb-ceph-"))
            try:
                a, b = ceph_cluster.start(base, pair=True)
            except Exception as exc:
                _error = str(exc)
                ceph_cluster.stop(base)
                shutil.rmtree(base, ignore_errors=True)
                pytest.fail(f"the Ceph clusters did not start: {exc}")

            def teardown() -> None:
                global _pair
                if os.environ.get("CINDERBLOCK_KEEP_CEPH"):  # debugging: keep logs, daemons stopped
                    for cluster in ceph_cluster.existing(base):
                        cluster.stop()
                    _pair = None
                    return
                ceph_cluster.stop(base)
                shutil.rmtree(base, ignore_errors=True)
                _pair = None

            request.config.add_cleanup(teardown)
            _pair = CephPair(base, a, b)
        return _pair
