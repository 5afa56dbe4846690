"""A service counts as up only while it takes messages: the heartbeat of a volume service whose RPC
server stopped leaves its row to age, and says so once in the log."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pytest
from sqlalchemy import select

from cinderblock.db import tables
from tests.conftest import Cloud


def _heartbeat_at(cloud: Cloud, binary: str) -> dt.datetime | None:
    with cloud.running.core.db.read() as session:
        return session.scalar(select(tables.Service.heartbeat_at).where(tables.Service.binary == binary))


def test_a_service_that_stopped_taking_messages_is_not_reported_up(
        make_cloud: Callable[..., Cloud], caplog: pytest.LogCaptureFixture) -> None:
    cloud = make_cloud("")
    heartbeat = cloud.running.heartbeat
    before = _heartbeat_at(cloud, "cinder-volume")
    heartbeat.beat()
    beaten = _heartbeat_at(cloud, "cinder-volume")
    assert before is not None and beaten is not None and beaten > before  # listening: beats
    server = cloud.running.volume_services[0].server
    assert server is not None and server.consuming()
    server.stop()
    assert not server.consuming()
    with caplog.at_level(logging.ERROR):
        heartbeat.beat()
        heartbeat.beat()
    assert _heartbeat_at(cloud, "cinder-volume") == beaten  # not listening: the row ages
    assert _heartbeat_at(cloud, "cinder-scheduler") is not None
    said = [r.getMessage() for r in caplog.records if "no longer takes messages" in r.getMessage()]
    host = cloud.running.volume_services[0].backend.service_host
    assert said == [f"cinder-volume {host} no longer takes messages: it stops reporting itself up"], said
