"""Shared fixtures: an embedded cinderblock in this process, driven through Starlette's TestClient."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from cinderblock.config.settings import build_config, load_settings
from cinderblock.volume.loading import driver_options
from cinderblock.db import state_guard
from cinderblock.runtime.embedded import Embedded, start_embedded
from cinderblock.runtime.wiring import build_core

ADMIN = {"X-Auth-Token": "admin:admin", "OpenStack-API-Version": "volume 3.71"}

# Every state the package writes goes through a declared transition (db/transition.py): anything else
# raises and fails the test that did it (tests/unit/test_state_machines.py shows it failing).
state_guard.install()


@pytest.fixture(autouse=True)
def _states_written_by_the_machines() -> Iterator[None]:
    state_guard.violations.clear()
    yield
    assert not state_guard.violations, "\n".join(state_guard.violations)


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def make_cloud(tmp_path: Path) -> Iterator[Callable[..., "Cloud"]]:
    """Start an embedded cinderblock (SQLite, in-process RPC) with a config file's text."""
    started: list[Embedded] = []

    def make(config: str = "", state: str = "state") -> Cloud:
        config_file = write_config(tmp_path / f"{state}.conf", config)
        conf = build_config(config_files=[config_file])
        settings = load_settings(conf, driver_options, state_path=str(tmp_path / state))
        running = start_embedded(build_core(settings))
        started.append(running)
        return Cloud(running, TestClient(running.app, base_url="http://cinderblock.test"))

    yield make
    for running in started:
        running.stop()


class Cloud:
    def __init__(self, running: Embedded, client: TestClient) -> None:
        self.running = running
        self.client = client

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={**ADMIN, **(headers or {})}, **kwargs)

    def wait_volume(self, volume_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        return self._wait(f"/v3/volumes/{volume_id}", "volume", statuses, timeout)

    def wait_snapshot(self, snapshot_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        return self._wait(f"/v3/snapshots/{snapshot_id}", "snapshot", statuses, timeout)

    def wait_gone(self, path: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.request("GET", path).status_code == 404:
                return
            time.sleep(0.02)
        raise AssertionError(f"{path} still exists after {timeout}s")

    def _wait(self, path: str, key: str, statuses: tuple[str, ...], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.request("GET", path)
            assert response.status_code == 200, response.text
            body = response.json()[key]
            if body["status"] in statuses:
                return body
            time.sleep(0.02)
        raise AssertionError(f"{path} is {body.get('status')}, not {statuses}, after {timeout}s")

    def create_volume(self, size: int = 1, **fields: Any) -> dict[str, Any]:
        response = self.request("POST", "/v3/volumes", json={"volume": {"size": size, **fields}})
        assert response.status_code == 202, response.text
        return self.wait_volume(response.json()["volume"]["id"], "available", "error")


@pytest.fixture
def cloud(make_cloud: Callable[..., Cloud]) -> Cloud:
    """Default embedded cloud: one file backend 'local' under tmp_path."""
    return make_cloud("")


@pytest.fixture
def fake_cloud(make_cloud: Callable[..., Cloud]) -> Cloud:
    """An embedded cloud on the in-memory fake driver (for failure injection)."""
    return make_cloud("[DEFAULT]\nenabled_backends = fake\n[fake]\nvolume_driver = fake\n")
