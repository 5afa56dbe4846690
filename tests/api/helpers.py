"""Small assertion helpers shared by the API tests."""
from __future__ import annotations

import datetime as dt
from typing import Any

from cinderblock.db import tables
from tests.conftest import Cloud


def assert_fault(response: Any, status: int, name: str, message: str | None = None,
                 contains: str | None = None) -> str:
    """The response is Cinder's fault envelope `{name: {code, message}}`; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status, body
    text = body[name]["message"]
    if message is not None:
        assert text == message, text
    if contains is not None:
        assert contains in text, text
    return str(text)


def headers(version: str | None = "3.71", token: str | None = "admin:admin") -> dict[str, str]:
    """Explicit headers for `cloud.client` (bypassing the Cloud helper's defaults)."""
    result: dict[str, str] = {}
    if version is not None:
        result["OpenStack-API-Version"] = f"volume {version}"
    if token is not None:
        result["X-Auth-Token"] = token
    return result


def action(cloud: Cloud, volume_id: str, body: Any, version: str = "3.71", token: str = "admin:admin") -> Any:
    return cloud.request("POST", f"/v3/volumes/{volume_id}/action", json=body,
                         headers=headers(version, token))


def set_volume(cloud: Cloud, volume_id: str, **values: Any) -> None:
    """Write columns of a volume row directly (to stage states the API cannot reach)."""
    with cloud.running.core.db.write() as session:
        volume = session.get(tables.Volume, volume_id)
        assert volume is not None
        for key, value in values.items():
            setattr(volume, key, value)


def usage(cloud: Cloud, project: str = "admin") -> dict[str, Any]:
    response = cloud.request("GET", f"/v3/os-quota-sets/{project}?usage=true")
    assert response.status_code == 200, response.text
    return dict(response.json()["quota_set"])


def in_use(cloud: Cloud, resource: str, project: str = "admin") -> int:
    return int(usage(cloud, project)[resource]["in_use"])


def volume_ids(cloud: Cloud, token: str = "admin:admin") -> list[str]:
    response = cloud.request("GET", "/v3/volumes", headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return [v["id"] for v in response.json()["volumes"]]


def snapshot(cloud: Cloud, volume_id: str, **fields: Any) -> dict[str, Any]:
    response = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume_id, **fields}})
    assert response.status_code == 202, response.text
    return cloud.wait_snapshot(response.json()["snapshot"]["id"], "available", "error")


def message(cloud: Cloud, project: str) -> str:
    """A user message of the project, written straight into the database; returns its id."""
    now = dt.datetime.utcnow()
    row = tables.Message(project_id=project, request_id="req-x", resource_type="VOLUME", resource_uuid=None,
                         event_id="VOLUME_VOLUME_001_002", message_level="ERROR",
                         user_message="schedule allocate volume:Could not find any available weighted backend.",
                         created_at=now, expires_at=now + dt.timedelta(days=1))
    with cloud.running.core.db.write() as session:
        session.add(row)
        session.flush()
        return row.id


def consistency(cloud: Cloud, group_snapshot_id: str, cg_api: bool = False) -> tuple[bool | None, float | None]:
    """Whether the members were taken at one instant, and how long writes were held: cinderblock's own
    resource (Cinder's group snapshot view has no such keys), checked against the row."""
    collection = "cgsnapshots" if cg_api else "group_snapshots"
    response = cloud.request("GET", f"/v3/{collection}/{group_snapshot_id}/consistency")
    assert response.status_code == 200, response.text
    shown = response.json()["consistency"]
    with cloud.running.core.db.read() as session:
        row = session.get(tables.GroupSnapshot, group_snapshot_id)
        assert row is not None
        assert (shown["group_snapshot_id"], shown["status"]) == (row.id, row.status)
        assert (shown["consistent"], shown["write_pause_ms"]) == (row.consistent, row.write_pause_ms)
    return shown["consistent"], shown["write_pause_ms"]
