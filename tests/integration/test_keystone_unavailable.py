"""auth_strategy = keystone while Keystone cannot be used: 503 with the reason, never a bare 500.

These run against the stand-in (keystone_standin.py), not the real Keystone of test_keystone.py:
a real Keystone cannot be made to be down and come back on the same address within a test, nor to
answer slower than keystonemiddleware's timeout, without stopping it for every other test of the
session (a restart costs seconds, and every other test would have to wait for it). A catalog without the
configured interface and a refused service user are made with the real Keystone (test_keystone.py).
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cinderblock.api.auth import UNREACHABLE, check_identity
from cinderblock.config.settings import Settings, build_config, load_settings
from cinderblock.volume.loading import driver_options
from tests.conftest import Cloud
from tests.integration.keystone_standin import KeystoneStandin
from tests.integration.keystone_support import assert_503, call, keystone_config

# One connection attempt per request: keystonemiddleware's default (3 retries, 0.5 + 1 + 2 s of back-off)
# only makes these tests slower.
NO_RETRIES = "http_request_max_retries = 0\n"


@pytest.fixture
def keystone() -> Iterator[KeystoneStandin]:
    with KeystoneStandin() as standin:
        yield standin


def test_keystone_down_answers_503_with_the_reason_and_recovers(make_cloud: Callable[..., Cloud],
                                                                keystone: KeystoneStandin) -> None:
    cloud = make_cloud(keystone_config(keystone.url, authtoken=NO_RETRIES))
    token = keystone.issue("alice", "0a0a", ["member", "reader"])
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200
    keystone.stop()
    for _ in range(2):
        message = assert_503(call(cloud, "GET", "/v3/volumes", token), "identity service", "reached")
        assert "127.0.0.1" not in message  # where Keystone lives is for the log, not for any caller
    # Back on the same address: the next request is served, no restart.
    keystone.start()
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200


def test_keystone_down_from_the_start_then_up(make_cloud: Callable[..., Cloud], keystone: KeystoneStandin) -> None:
    keystone.stop()
    cloud = make_cloud(keystone_config(keystone.url, authtoken=NO_RETRIES))  # the API starts regardless
    assert_503(call(cloud, "GET", "/v3/volumes", "any-token"), "reached")
    keystone.start()
    token = keystone.issue("alice", "0a0a", ["member", "reader"])
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200


def test_slow_keystone_answers_503(make_cloud: Callable[..., Cloud], keystone: KeystoneStandin) -> None:
    cloud = make_cloud(keystone_config(keystone.url, authtoken=NO_RETRIES + "http_connect_timeout = 1\n"))
    token = keystone.issue("alice", "0a0a", ["member", "reader"])
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200
    keystone.delay = 1.5
    assert_503(call(cloud, "GET", "/v3/volumes", token), "in time")
    keystone.delay = 0
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200


def settings_for(tmp_path: Path, config: str) -> Settings:
    path = tmp_path / "check.conf"
    path.write_text(config)
    return load_settings(build_config(config_files=[str(path)]), driver_options,
                         state_path=str(tmp_path / "check-state"))


def test_start_check_warns_when_keystone_is_down(tmp_path: Path, keystone: KeystoneStandin,
                                                caplog: pytest.LogCaptureFixture) -> None:
    keystone.stop()
    problem = check_identity(settings_for(tmp_path, keystone_config(keystone.url)))
    assert problem is not None and UNREACHABLE in problem and keystone.url in problem
    record = next(r for r in caplog.records if r.name == "cinderblock.api.auth")
    assert record.levelname == "WARNING" and "starting anyway" in record.getMessage()


def test_serve_starts_with_keystone_down_and_answers_503_until_it_is_up(tmp_path: Path,
                                                                       keystone: KeystoneStandin) -> None:
    keystone.stop()
    config = tmp_path / "cinder.conf"
    config.write_text(keystone_config(keystone.url, authtoken=NO_RETRIES))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "cinderblock.cli", "--config-file", str(config),
                                    "--state-path", str(tmp_path / "state"), "serve", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/").status_code == 300:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert UNREACHABLE in log.read_text() and "starting anyway" in log.read_text()
        headers = {"X-Auth-Token": "a-token"}
        assert_503(httpx.get(url + "/v3/volumes", headers=headers), UNREACHABLE)
        keystone.start()
        token = keystone.issue("alice", "0a0a", ["member", "reader"])
        assert httpx.get(url + "/v3/volumes", headers={"X-Auth-Token": token}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
