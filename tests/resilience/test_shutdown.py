"""Stopping and failing to start, as separate processes on PostgreSQL and RabbitMQ:
- SIGTERM: the volume service says it stops, finishes the create it runs, leaves the unread ones in
  the queue for its next start, and exits 0; nothing ends in error, nothing is lost;
- work longer than graceful_shutdown_timeout: it exits at the timeout anyway, naming what it left,
  which its next start settles;
- a listener that cannot start (the broker refuses its queue) ends the process with the reason, and
  the service never counts as up."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import kombu

from tests.resilience.deploy import HEADERS, Deployment, deployment, fresh_database, private_vhost, wait_for

N = 40


def _post_creates(cloud: Deployment, count: int, pause: float = 0.0) -> list[str]:
    ids = []
    with httpx.Client(base_url=cloud.url, headers=HEADERS, timeout=30) as client:
        for _ in range(count):
            response = client.post("/v3/volumes", json={"volume": {"size": 1}})
            assert response.status_code == 202, response.text
            ids.append(response.json()["volume"]["id"])
            time.sleep(pause)
    return ids


def _stop_volume(cloud: Deployment) -> tuple[int, float]:
    """SIGTERM the volume service: (exit status, seconds it took)."""
    process = cloud.processes.pop("volume")
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(120)
    return code, time.monotonic() - began


def test_sigterm_finishes_the_work_in_flight_and_leaves_the_rest_queued(tmp_path: Path) -> None:
    config = "quota_volumes = -1\nquota_gigabytes = -1\nvolume_workers_per_backend = 1\ngraceful_shutdown_timeout = 30"
    with deployment(tmp_path, "postgresql", extra_config=config) as cloud:
        ids: list[str] = []
        poster = threading.Thread(target=lambda: ids.extend(_post_creates(cloud, N, pause=0.05)))
        poster.start()
        wait_for(lambda: list(cloud.statuses().values()).count("available") >= 3, 60, "the first creates")
        code, took = _stop_volume(cloud)
        poster.join()
        log = cloud.log("volume").read_text()
        assert code == 0, log[-3000:]
        assert took < 30, f"took {took:.1f} s"
        assert "cinder-volume scaleout: stopping on SIGTERM: no new work is taken" in log
        assert "cinder-volume scaleout: stopped in" in log
        # Stopped: what it ran is done, the rest waits in the queue, and nothing failed.
        stopped = cloud.statuses()
        assert set(stopped) == set(ids) and set(stopped.values()) == {"available", "creating"}, stopped
        # Its next start takes the rest from the queue: every create ends available, one file each.
        cloud.start("volume", wait=False)
        final = cloud.settle(timeout=90)
        assert set(final) == set(ids) and set(final.values()) == {"available"}, final
        assert cloud.files() == set(ids)


def test_work_longer_than_the_timeout_does_not_hold_the_stop(tmp_path: Path) -> None:
    slow = ("graceful_shutdown_timeout = 3\nenabled_backends = slow\n"
            "[slow]\nvolume_driver = fake\nfake_create_seconds = 60")
    with deployment(tmp_path, "postgresql", extra_config=slow) as cloud:
        (volume_id,) = _post_creates(cloud, 1)
        wait_for(lambda: (cloud.volume(volume_id) or {}).get("os-vol-host-attr:host"), 30, "the placement")
        time.sleep(1.0)  # the cast reaches the volume service, whose driver then sleeps for a minute
        code, took = _stop_volume(cloud)
        log = cloud.log("volume").read_text()
        assert code == 1, log[-3000:]
        assert 3 <= took < 8, f"took {took:.1f} s"
        assert f"still working after graceful_shutdown_timeout (3 s) on {volume_id}; exiting now" in log
        # Started again (quick creates now): the create the stop cut short is settled, not left creating.
        cloud.config.write_text(cloud.config.read_text().replace("fake_create_seconds = 60",
                                                                 "fake_create_seconds = 0"))
        cloud.start("volume", wait=False)
        final = cloud.settle(timeout=60)
        assert final == {volume_id: "error"}  # the fake's storage went with its process: nothing to keep


def test_a_listener_that_cannot_start_ends_the_process_and_the_service_is_never_up(tmp_path: Path) -> None:
    with private_vhost() as vhost, fresh_database("postgresql") as url:
        cloud = Deployment(tmp_path, url, vhost)
        cloud.sync()
        # The volume service's own queue, declared beforehand with other arguments: the broker
        # refuses the service's declaration (PRECONDITION_FAILED), as after a change of
        # amqp_durable_queues with the old queue still there.
        with kombu.Connection(f"amqp://guest:guest@127.0.0.1:5672/{vhost}") as connection:
            kombu.Queue("cinder-volume.scaleout@local", durable=False, auto_delete=False,
                        channel=connection.channel()).declare()
        try:
            cloud.start("scheduler", "api", "volume", wait=False)
            volume = cloud.processes["volume"]
            code = volume.wait(60)
            log = cloud.log("volume").read_text()
            assert code == 1, log[-3000:]
            assert "cinderblock volume cannot take messages, so it does not run: cannot listen on " \
                   "cinder-volume.scaleout@local" in log, log[-3000:]
            assert "PRECONDITION_FAILED" in log
            cloud.processes.pop("volume")
            wait_for(lambda: cloud.http.get("/").status_code == 300, 60, "the API")
            services = cloud.http.get("/v3/os-services", params={"binary": "cinder-volume"}).json()["services"]
            assert [(s["host"], s["state"]) for s in services] == [("scaleout@local", "down")]
        finally:
            cloud.stop()
