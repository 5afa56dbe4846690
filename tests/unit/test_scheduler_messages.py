"""User messages the scheduler leaves when nothing fits (GET/DELETE /messages, API 3.3; paging 3.5):
Cinder's shape, per project, filters, sort and pagination like every other list."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from cinderblock.db import tables
from cinderblock.domain import messages
from tests.api.helpers import assert_fault, headers
from tests.conftest import Cloud

PROJECT_A, PROJECT_B = "0a0a", "0b0b"


def unplaceable(cloud: Cloud, project: str = PROJECT_A, name: str = "nowhere") -> tuple[dict[str, Any], str]:
    """A volume nothing can hold; returns it and the create's request id."""
    type_id = _type(cloud, name)
    response = cloud.request("POST", "/v3/volumes", headers=headers(token=f"u:{project}"),
                             json={"volume": {"size": 1, "volume_type": type_id}})
    assert response.status_code == 202, response.text
    volume = cloud.wait_volume(response.json()["volume"]["id"], "error")
    return volume, response.headers["x-openstack-request-id"]


def _type(cloud: Cloud, name: str) -> str:
    listed = cloud.request("GET", f"/v3/types?name={name}").json()["volume_types"]
    if listed:
        return str(listed[0]["id"])
    body = {"volume_type": {"name": name, "extra_specs": {"volume_backend_name": "no-such-backend"}}}
    return str(cloud.request("POST", "/v3/types", json=body).json()["volume_type"]["id"])


def listing(cloud: Cloud, query: str = "", project: str = PROJECT_A, version: str = "3.71") -> Any:
    response = cloud.request("GET", f"/v3/messages{query}", headers=headers(version, f"u:{project}"))
    assert response.status_code == 200, response.text
    return response.json()


def test_nothing_fits_leaves_a_message_in_cinders_shape(cloud: Cloud) -> None:
    volume, request_id = unplaceable(cloud)
    assert volume["status"] == "error"
    (message,) = listing(cloud)["messages"]
    assert set(message) == {"id", "message_level", "event_id", "user_message", "resource_type", "resource_uuid",
                            "created_at", "guaranteed_until", "request_id", "links"}
    assert message["message_level"] == "ERROR" and message["resource_type"] == "VOLUME"
    assert message["resource_uuid"] == volume["id"] and message["request_id"] == request_id
    assert message["event_id"] == "VOLUME_VOLUME_001_003"
    assert message["user_message"] == (
        "schedule allocate volume: No valid backend was found. No backend satisfied the request: "
        "CapabilitiesFilter removed the last candidates: no backend offers the capabilities the volume type "
        "asks for (volume_backend_name).")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", message["guaranteed_until"])
    assert message["guaranteed_until"] > message["created_at"]
    assert message["links"][0]["href"].endswith(f"/v3/messages/{message['id']}")

    shown = cloud.request("GET", f"/v3/messages/{message['id']}", headers=headers(token=f"u:{PROJECT_A}"))
    assert shown.status_code == 200 and shown.json() == {"message": message}
    deleted = cloud.request("DELETE", f"/v3/messages/{message['id']}", headers=headers(token=f"u:{PROJECT_A}"))
    assert deleted.status_code == 204 and deleted.content == b""
    gone = cloud.request("GET", f"/v3/messages/{message['id']}", headers=headers(token=f"u:{PROJECT_A}"))
    assert_fault(gone, 404, "itemNotFound", f"Message {message['id']} could not be found.")
    assert listing(cloud)["messages"] == []


@pytest.mark.parametrize("method,path", [("GET", "/v3/messages"), ("GET", "/v3/messages/x"),
                                         ("DELETE", "/v3/messages/x")])
def test_messages_need_3_3(cloud: Cloud, method: str, path: str) -> None:
    for version in ("3.0", "3.2"):
        response = cloud.request(method, path, headers={"OpenStack-API-Version": f"volume {version}"})
        assert_fault(response, 404, "itemNotFound")


def test_a_project_sees_only_its_own_messages(cloud: Cloud) -> None:
    unplaceable(cloud, PROJECT_A)
    unplaceable(cloud, PROJECT_B)
    (mine,) = listing(cloud, project=PROJECT_A)["messages"]
    (theirs,) = listing(cloud, project=PROJECT_B)["messages"]
    assert mine["id"] != theirs["id"]
    assert len(listing(cloud, "?all_tenants=1", project=PROJECT_A)["messages"]) == 2  # an admin asking for all


def test_filters_sort_and_pages_from_3_5(cloud: Cloud) -> None:
    volumes = [unplaceable(cloud)[0] for _ in range(3)]
    newest_first = [m["resource_uuid"] for m in listing(cloud)["messages"]]
    assert newest_first == [v["id"] for v in reversed(volumes)]
    ascending = listing(cloud, "?sort=created_at:asc")["messages"]
    assert [m["resource_uuid"] for m in ascending] == [v["id"] for v in volumes]
    (one,) = listing(cloud, f"?resource_uuid={volumes[1]['id']}")["messages"]
    assert one["resource_uuid"] == volumes[1]["id"]
    assert len(listing(cloud, "?event_id=VOLUME_VOLUME_001_003&message_level=ERROR")["messages"]) == 3
    assert listing(cloud, "?event_id=VOLUME_VOLUME_001_009")["messages"] == []

    page = listing(cloud, "?limit=2")
    assert len(page["messages"]) == 2
    (link,) = page["messages_links"]
    assert link["rel"] == "next" and f"marker={page['messages'][-1]['id']}" in link["href"]
    rest = cloud.request("GET", link["href"], headers=headers(token=f"u:{PROJECT_A}")).json()
    assert [m["resource_uuid"] for m in page["messages"] + rest["messages"]] == newest_first
    # Below 3.5 the parameters are ignored (Cinder): everything, no links.
    old = listing(cloud, "?limit=1&resource_uuid=x", version="3.4")
    assert len(old["messages"]) == 3 and "messages_links" not in old
    bad = cloud.request("GET", "/v3/messages?sort=user_message", headers=headers(token=f"u:{PROJECT_A}"))
    assert_fault(bad, 400, "badRequest")


def test_expired_messages_are_reaped_by_the_next_write(cloud: Cloud) -> None:
    db = cloud.running.core.db
    with db.write() as session:
        old = messages.record(session, PROJECT_A, "req-old", None, messages.SCHEDULE_ALLOCATE_VOLUME,
                              messages.NO_BACKEND, ttl=1)
        old.expires_at = tables.utcnow() - dt.timedelta(seconds=1)
    assert len(listing(cloud)["messages"]) == 1
    with db.write() as session:
        messages.record(session, PROJECT_A, "req-new", None, messages.SCHEDULE_ALLOCATE_VOLUME, messages.NO_BACKEND)
    (left,) = listing(cloud)["messages"]
    assert left["request_id"] == "req-new" and "resource_uuid" not in left  # Cinder omits it when none
    assert left["user_message"] == "schedule allocate volume: Could not find any available weighted backend."
