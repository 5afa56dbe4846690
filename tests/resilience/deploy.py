"""Scale-out deployments for tests: api, scheduler and volume as separate `cinderblock` processes on
a private RabbitMQ vhost and a fresh PostgreSQL or MariaDB database (the machine's own servers).

Used by the resilience tests, the scale-out e2e variant (tests/e2e/conftest.py) and bench/scale_out.py.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

HEADERS = {"X-Auth-Token": "admin:admin", "OpenStack-API-Version": "volume 3.71"}
PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
SERVICES = ("volume", "scheduler", "api")
TRANSIENT = frozenset({"creating", "deleting", "extending", "attaching", "detaching", "reverting"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], check=check, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of our own, so parallel runs never see each other's messages."""
    name = f"cinderblock-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield name
    finally:
        rabbitmqctl("delete_vhost", name, check=False)


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new, empty database on the machine's PostgreSQL or MariaDB; dropped afterwards."""
    name = f"cb_{uuid.uuid4().hex[:10]}"
    if kind == "postgresql":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1/{name}"
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    elif kind == "mariadb":
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        try:
            conn.cursor().execute(f"CREATE DATABASE {name}")
            yield f"mysql+pymysql://root@127.0.0.1/{name}"
        finally:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            conn.close()
    else:
        raise ValueError(kind)


class Deployment:
    """The three services of one cloud, each a `python -m cinderblock <service>` process."""

    def __init__(self, workdir: Path, database_url: str, vhost: str, api_workers: int = 1,
                 extra_config: str = "", host: str = "scaleout", port: int | None = None,
                 transport_url: str | None = None) -> None:
        self.workdir = workdir
        self.state = workdir / "state"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "cinder.conf"
        self.database_url = database_url
        self.config.write_text(
            f"[DEFAULT]\nstate_path = {self.state}\nhost = {host}\n"
            f"transport_url = {transport_url or f'rabbit://guest:guest@127.0.0.1:5672/{vhost}'}\n"
            f"osapi_volume_listen_port = {self.port}\nosapi_volume_workers = {api_workers}\n"
            f"{extra_config}\n[database]\nconnection = {database_url}\n")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(base_url=self.url, headers=HEADERS, timeout=30)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cinderblock", "--config-file", str(self.config), *args]

    def log(self, service: str) -> Path:
        return self.workdir / f"{service}.log"

    # --- lifecycle -------------------------------------------------------------------------
    def sync(self) -> None:
        done = subprocess.run(self.command("db", "sync"), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    def start(self, *services: str, wait: bool = True) -> Deployment:
        for service in services or SERVICES:
            with open(self.log(service), "ab") as log:  # a restart appends
                self.processes[service] = subprocess.Popen(self.command(service), stdout=log,
                                                           stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def api_up() -> bool:
            for service, process in self.processes.items():
                assert process.poll() is None, f"{service} exited ({process.returncode}):\n{self.logs()}"
            try:
                return self.http.get("/").status_code == 300
            except httpx.HTTPError:
                return False

        wait_for(api_up, timeout, "the API")

        def services_up() -> bool:
            services = self.http.get("/v3/os-services").json().get("services", [])
            up = {s["binary"] for s in services if s["state"] == "up" and s["status"] == "enabled"}
            return {"cinder-scheduler", "cinder-volume"} <= up

        wait_for(services_up, timeout, "scheduler and volume services to be up")
        wait_for(lambda: self.http.get("/v3/scheduler-stats/get_pools").json().get("pools"), timeout, "pools")

    def kill(self, service: str) -> None:
        """kill -9, no cleanup of any kind."""
        process = self.processes.pop(service)
        os.killpg(process.pid, signal.SIGKILL)  # uvicorn workers too
        process.wait(10)

    def stop(self, timeout: float = 30) -> dict[str, int]:
        """SIGTERM every process; their exit statuses."""
        codes: dict[str, int] = {}
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for service, process in self.processes.items():
            try:
                codes[service] = process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes[service] = process.wait()
        self.processes.clear()
        self.http.close()
        return codes

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"== {path.name}\n{path.read_text(errors='replace')[-tail:]}"
                         for path in sorted(self.workdir.glob("*.log")))

    # --- HTTP ------------------------------------------------------------------------------
    def volume(self, volume_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/v3/volumes/{volume_id}")
        return None if response.status_code == 404 else response.json()["volume"]

    def statuses(self) -> dict[str, str]:
        """Every volume's status, by id (one list request)."""
        response = self.http.get("/v3/volumes/detail", params={"all_tenants": 1, "limit": 1000})
        assert response.status_code == 200, response.text
        return {v["id"]: v["status"] for v in response.json()["volumes"]}

    def settle(self, timeout: float = 60) -> dict[str, str]:
        """Wait until no volume is in a transient state; their statuses then."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.statuses()
            stuck = {ident: status for ident, status in current.items() if status in TRANSIENT}
            if not stuck:
                return current
            if time.monotonic() > deadline:
                details = {ident: {k: (self.volume(ident) or {}).get(k) for k in
                                   ("status", "os-vol-host-attr:host", "created_at", "updated_at")}
                           for ident in stuck}
                raise AssertionError(f"still transient after {timeout:.0f} s: {details}")
            time.sleep(0.5)

    def files(self, prefix: str = "volume-") -> set[str]:
        """Ids of the volume (or snapshot) files in the default pool directory."""
        pool = self.state / "volumes"
        return {p.name[len(prefix):] for p in pool.glob(f"{prefix}*")} if pool.exists() else set()


@contextlib.contextmanager
def deployment(workdir: Path, kind: str, **options: Any) -> Iterator[Deployment]:
    """A synced, started deployment on a fresh database and vhost; everything removed afterwards."""
    with private_vhost() as vhost, fresh_database(kind) as url:
        cloud = Deployment(workdir, url, vhost, **options)
        cloud.sync()
        try:
            yield cloud.start()
        except BaseException:
            print(cloud.logs())
            raise
        finally:
            cloud.stop()
