"""End-to-end fixtures: a real `cinderblock serve` subprocess driven by the real clients.

`Server` starts the service on a free port with its own state directory, waits until `GET /` answers,
and at teardown sends SIGTERM and asserts a clean exit (status 0, no traceback in its log). A failing
test gets the tail of every running service's log attached to its report.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from cinderblock.scheduler.manager import SchedulerManager
from tests.resilience.deploy import Deployment, fresh_database, private_vhost

BIN = Path(sys.executable).parent
# Seconds the scheduler may keep using its view of enabled/disabled services (a known lag: Cinder's
# scheduler reads the service rows on every request).
SERVICE_CACHE = float(getattr(SchedulerManager, "SERVICE_CACHE_SECONDS", 0.0))
ADMIN_TOKEN = "admin:admin"
LATEST = "3.71"
RUNNING: list["Server"] = []


def tool(name: str) -> str:
    """A console script of this venv (cinder, openstack, cinderblock) or a system tool; fail if absent."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    assert found, f"required tool {name!r} is not installed (looked in {BIN} and PATH)"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One `cinderblock serve` process."""

    def __init__(self, workdir: Path, config: str = "", name: str = "cinderblock") -> None:
        self.name = name
        self.workdir = workdir
        self.state = workdir / "state"
        self.log_path = workdir / "cinderblock.log"
        self.config_path = workdir / "cinder.conf" if config else None
        if self.config_path is not None:
            self.config_path.write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.endpoint = f"{self.url}/v3"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "Server":
        command = [tool("cinderblock"), "--state-path", str(self.state)]
        if self.config_path is not None:
            command += ["--config-file", str(self.config_path)]
        command += ["serve", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:  # a restart appends
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                            start_new_session=True)
        RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode} while starting:\n"
                                     f"{self.log_tail()}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code == 300:
                    return self
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{self.name} did not answer GET / in {timeout}s:\n{self.log_tail()}"
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then the process must exit by itself with status 0 and a traceback-free log."""
        assert self.process is not None
        if self in RUNNING:
            RUNNING.remove(self)
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s:\n{self.log_tail()}") from None
        assert code == 0, f"{self.name} exited with status {code}:\n{self.log_tail()}"
        log = self.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{self.name} logged a traceback:\n{self.log_tail(400)}"
        stopping = log[log.rfind("cinderblock serving on"):]
        assert ": stopping on a stop signal: no new work is taken" in stopping and ": stopped in " in stopping, \
            f"{self.name} did not say it stops:\n{self.log_tail()}"

    def restart(self) -> "Server":
        """Stop cleanly and start again on the same state directory and port."""
        self.stop()
        self.http = requests.Session()
        return self.start()

    def log_tail(self, lines: int = 150) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])

    # --- HTTP ------------------------------------------------------------------------------
    def api(self, method: str, path: str, token: str = ADMIN_TOKEN, version: str | None = LATEST,
            **kwargs: Any) -> requests.Response:
        """`path` is relative to /v3 (e.g. "/volumes") unless it is an absolute URL."""
        headers = {"X-Auth-Token": token, **kwargs.pop("headers", {})}
        if version is not None:
            headers["OpenStack-API-Version"] = f"volume {version}"
        url = path if path.startswith("http") else f"{self.endpoint}{path}"
        return self.http.request(method, url, headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, status: int | None = None, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        expected = (status,) if status else (200, 202, 204)
        assert response.status_code in expected, f"{method} {path} → {response.status_code}: {response.text}"
        return response.json() if response.content else None

    def create_volume(self, size: int = 1, token: str = ADMIN_TOKEN, wait: bool = True,
                      **fields: Any) -> dict[str, Any]:
        volume = self.ok("POST", "/volumes", json={"volume": {"size": size, **fields}}, token=token)["volume"]
        return self.wait_volume(volume["id"], "available", token=token) if wait else volume

    def create_snapshot(self, volume_id: str, token: str = ADMIN_TOKEN, **fields: Any) -> dict[str, Any]:
        snap = self.ok("POST", "/snapshots", json={"snapshot": {"volume_id": volume_id, **fields}},
                       token=token)["snapshot"]
        return self.wait_snapshot(snap["id"], "available", token=token)

    def _wait(self, path: str, key: str, statuses: tuple[str, ...], timeout: float, token: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            response = self.api("GET", path, token=token)
            if response.status_code == 200:
                last = response.json()[key]
                if last["status"] in statuses:
                    return dict(last)
                if last["status"].startswith("error") and not any(s.startswith("error") for s in statuses):
                    break
            time.sleep(0.1)
        raise AssertionError(f"{path} did not reach {statuses}; last seen: {json.dumps(last, indent=1)}")

    def wait_volume(self, volume_id: str, *statuses: str, timeout: float = 30.0,
                    token: str = ADMIN_TOKEN) -> dict[str, Any]:
        return self._wait(f"/volumes/{volume_id}", "volume", statuses, timeout, token)

    def wait_snapshot(self, snapshot_id: str, *statuses: str, timeout: float = 30.0,
                      token: str = ADMIN_TOKEN) -> dict[str, Any]:
        return self._wait(f"/snapshots/{snapshot_id}", "snapshot", statuses, timeout, token)

    def wait_gone(self, path: str, timeout: float = 30.0, token: str = ADMIN_TOKEN) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.api("GET", path, token=token)
            if response.status_code == 404:
                return
            time.sleep(0.1)
        raise AssertionError(f"{path} still exists after {timeout}s: {response.text}")

    # --- the cinder CLI --------------------------------------------------------------------
    def cinder(self, *args: str, project: str = "admin", user: str = "admin", endpoint: str | None = None,
               version: str | None = None, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """Run the real `cinder` with the noauth plugin; assert its exit status is `expect`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CINDER"))}
        env.update(OS_AUTH_TYPE="noauth", OS_USER_ID=user, OS_PROJECT_ID=project,
                   CINDER_ENDPOINT=endpoint or self.endpoint)
        command = [tool("cinder")]
        if version is not None:
            command += ["--os-volume-api-version", version]
        proc = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == expect, (f"cinder {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                                           f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc


# --- parsing the CLI's tables -------------------------------------------------------------------
def table_rows(output: str) -> list[dict[str, str]]:
    """A prettytable printed by cinder/openstack → one dict per row, keyed by the header."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    if not lines:
        return []
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def properties(output: str) -> dict[str, str]:
    """A Property/Value table → dict (continuation rows of multi-line values are appended)."""
    result: dict[str, str] = {}
    last = None
    for row in table_rows(output):
        key = row.get("Property", row.get("Name", row.get("Field", "")))
        value = row.get("Value", "")
        if key:
            result[key], last = value, key
        elif last is not None:
            result[last] += "\n" + value
    return result


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One default service (a `local` file backend) per test module."""
    running = Server(tmp_path_factory.mktemp("cinderblock")).start()
    yield running
    running.stop()


class ScaleOutServer(Server):
    """The same cloud as three processes (api, scheduler, volume) over RabbitMQ on PostgreSQL or
    MariaDB: a private vhost and a fresh database (tests/resilience/deploy.py), one local file backend."""

    def __init__(self, workdir: Path, kind: str) -> None:
        super().__init__(workdir, name=f"scale-out on {kind}")
        self.kind = kind
        self.log_path = workdir / "volume.log"
        self._resources = contextlib.ExitStack()
        self.deployment: Deployment | None = None

    def start(self, timeout: float = 90.0) -> "ScaleOutServer":
        vhost = self._resources.enter_context(private_vhost())
        url = self._resources.enter_context(fresh_database(self.kind))
        # Volume workflows take their locks through tooz on the machine's Redis, as active-active would.
        self.deployment = Deployment(self.workdir, url, vhost, host="cinderblock", port=self.port,
                                     extra_config="[coordination]\nbackend_url = redis://127.0.0.1:6379")
        self.deployment.sync()
        RUNNING.append(self)
        self.deployment.start(wait=False)
        self.deployment.wait_ready(timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every process: each must exit with status 0 and a traceback-free log."""
        assert self.deployment is not None
        if self in RUNNING:
            RUNNING.remove(self)
        self.http.close()
        try:
            codes = self.deployment.stop(timeout)
            assert set(codes.values()) == {0}, f"{self.name}: exit statuses {codes}:\n{self.log_tail()}"
            assert "Traceback" not in self.deployment.logs(tail=10**7), f"{self.name} logged a traceback:\n" \
                f"{self.log_tail()}"
        finally:
            self._resources.close()

    def restart(self) -> "ScaleOutServer":
        raise NotImplementedError("restart the services of a Deployment one by one instead")

    def log_tail(self, lines: int = 150) -> str:
        return self.deployment.logs(tail=100 * lines) if self.deployment else "(not started)"


class ScaleOutClouds:
    """One scale-out cloud per database kind, started on first use and kept for the session."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.factory = tmp_path_factory
        self.started: dict[str, ScaleOutServer] = {}

    def get(self, kind: str) -> ScaleOutServer:
        if kind not in self.started:
            self.started[kind] = ScaleOutServer(self.factory.mktemp(f"scale-out-{kind}"), kind).start()
        return self.started[kind]


@pytest.fixture(scope="session")
def scale_out_clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOutClouds]:
    clouds = ScaleOutClouds(tmp_path_factory)
    yield clouds
    with ThreadPoolExecutor() as pool:  # side by side: each takes seconds to stop
        for stopped in [pool.submit(cloud.stop) for cloud in clouds.started.values()]:
            stopped.result()


@pytest.fixture(scope="module", params=["embedded", "postgresql", "mariadb"])
def deployed(request: pytest.FixtureRequest, scale_out_clouds: ScaleOutClouds) -> Server:
    """A representative subset of the e2e tests runs on the embedded `serve` and again on three
    separate processes over RabbitMQ with PostgreSQL, and with MariaDB."""
    if request.param == "embedded":
        return request.getfixturevalue("server")  # type: ignore[no-any-return]
    return scale_out_clouds.get(request.param)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for running in RUNNING:
            report.sections.append((f"{running.name} log ({running.log_path})", running.log_tail()))
