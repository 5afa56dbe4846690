"""Quota enforcement: 413 overLimit with Cinder's messages, usage, and limits (reference §3, §4.9)."""
from __future__ import annotations

from typing import Any

from tests.api.helpers import action, assert_fault, headers, in_use, snapshot, usage
from tests.conftest import Cloud


def set_quota(cloud: Cloud, project: str = "admin", **values: int) -> Any:
    response = cloud.request("PUT", f"/v3/os-quota-sets/{project}", json={"quota_set": values})
    assert response.status_code == 200, response.text
    return response.json()["quota_set"]


def assert_over_limit(response: Any, message: str) -> None:
    assert_fault(response, 413, "overLimit", message)
    assert response.json()["overLimit"]["retryAfter"] == "0"
    assert response.headers["Retry-After"] == "0"


def test_volume_count_quota(cloud: Cloud) -> None:
    assert set_quota(cloud, volumes=2)["volumes"] == 2
    cloud.create_volume(1)
    cloud.create_volume(1)
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1}})
    assert_over_limit(response, "VolumeLimitExceeded: Maximum number of volumes allowed (2) exceeded for "
                                "quota 'volumes'.")
    assert in_use(cloud, "volumes") == 2 and len(cloud.request("GET", "/v3/volumes").json()["volumes"]) == 2


def test_gigabytes_quota_at_create(cloud: Cloud) -> None:
    set_quota(cloud, gigabytes=10)
    cloud.create_volume(8)
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 5}})
    assert_over_limit(response, "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
                                "gigabytes quota. Requested 5G, quota is 10G and 8G has been consumed.")
    assert in_use(cloud, "gigabytes") == 8 and in_use(cloud, "volumes") == 1
    assert cloud.create_volume(2)["status"] == "available"  # exactly at the limit is fine


def test_gigabytes_quota_at_extend(cloud: Cloud) -> None:
    set_quota(cloud, gigabytes=10)
    volume = cloud.create_volume(4)
    cloud.create_volume(4)
    response = action(cloud, volume["id"], {"os-extend": {"new_size": 7}})
    assert_over_limit(response, "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
                                "gigabytes quota. Requested 3G, quota is 10G and 8G has been consumed.")
    shown = cloud.wait_volume(volume["id"], "available")
    assert shown["size"] == 4 and in_use(cloud, "gigabytes") == 8
    assert action(cloud, volume["id"], {"os-extend": {"new_size": 6}}).status_code == 202
    assert cloud.wait_volume(volume["id"], "available")["size"] == 6
    assert in_use(cloud, "gigabytes") == 10


def test_snapshot_quotas(cloud: Cloud) -> None:
    set_quota(cloud, snapshots=1, gigabytes=5)
    volume = cloud.create_volume(2)
    snapshot(cloud, volume["id"])
    response = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume["id"]}})
    assert_over_limit(response, "SnapshotLimitExceeded: Maximum number of snapshots allowed (1) exceeded for "
                                "quota 'snapshots'.")
    set_quota(cloud, snapshots=5)
    response = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume["id"]}})
    assert_over_limit(response, "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
                                "gigabytes quota. Requested 2G, quota is 5G and 4G has been consumed.")
    assert in_use(cloud, "snapshots") == 1 and in_use(cloud, "gigabytes") == 4
    assert len(cloud.request("GET", "/v3/snapshots").json()["snapshots"]) == 1


def test_per_type_quota(cloud: Cloud) -> None:
    assert cloud.request("POST", "/v3/types", json={"volume_type": {"name": "gold"}}).status_code == 200
    set_quota(cloud, volumes_gold=1)
    cloud.create_volume(1, volume_type="gold")
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "volume_type": "gold"}})
    assert_over_limit(response, "VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded for "
                                "quota 'volumes_gold'.")
    assert cloud.create_volume(1)["status"] == "available"  # other types are not limited
    assert in_use(cloud, "volumes_gold") == 1 and in_use(cloud, "volumes") == 2


def test_quota_set_usage_and_deletes_give_back(cloud: Cloud) -> None:
    before = usage(cloud)
    assert before["volumes"] == {"limit": 10, "in_use": 0, "reserved": 0}
    volume = cloud.create_volume(3)
    snap = snapshot(cloud, volume["id"])
    now = usage(cloud)
    assert now["volumes"]["in_use"] == 1 and now["gigabytes"]["in_use"] == 6 and now["snapshots"]["in_use"] == 1
    assert now["volumes___DEFAULT__"]["in_use"] == 1 and now["gigabytes___DEFAULT__"]["in_use"] == 6
    assert cloud.request("DELETE", f"/v3/snapshots/{snap['id']}").status_code == 202
    cloud.wait_gone(f"/v3/snapshots/{snap['id']}")
    assert in_use(cloud, "snapshots") == 0 and in_use(cloud, "gigabytes") == 3
    assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    after = usage(cloud)
    assert all(after[k]["in_use"] == 0 for k in ("volumes", "gigabytes", "snapshots"))


def test_quota_update_rules(cloud: Cloud) -> None:
    shown = cloud.request("GET", "/v3/os-quota-sets/other").json()["quota_set"]
    assert shown["id"] == "other" and shown["volumes"] == 10 and shown["per_volume_gigabytes"] == -1
    defaults = cloud.request("GET", "/v3/os-quota-sets/other/defaults").json()["quota_set"]
    assert defaults["gigabytes"] == 1000
    assert set_quota(cloud, "other", volumes=3, gigabytes=-1)["volumes"] == 3
    assert cloud.request("GET", "/v3/os-quota-sets/other").json()["quota_set"]["gigabytes"] == -1
    for bad in ({"bogus": 1}, {"volumes": -2}, {"volumes": "x"}):
        assert_fault(cloud.request("PUT", "/v3/os-quota-sets/other", json={"quota_set": bad}), 400, "badRequest")
    assert_fault(cloud.request("PUT", "/v3/os-quota-sets/other", json={"nope": {}}), 400, "badRequest")
    member = headers(token="u:other:member")
    assert_fault(cloud.request("PUT", "/v3/os-quota-sets/other", json={"quota_set": {"volumes": 5}},
                               headers=member), 403, "forbidden")
    assert_fault(cloud.request("GET", "/v3/os-quota-sets/admin", headers=member), 403, "forbidden")
    assert cloud.request("GET", "/v3/os-quota-sets/other", headers=member).status_code == 200
    reset = cloud.request("DELETE", "/v3/os-quota-sets/other")
    assert reset.status_code == 200 and reset.content == b""  # Cinder answers no body
    assert cloud.request("GET", "/v3/os-quota-sets/other").json()["quota_set"]["volumes"] == 10


def test_quota_below_usage_kept_unless_validation_asked(cloud: Cloud) -> None:
    """As Cinder: a limit below usage is stored and only stops new usage; `?skip_validation=False`
    (cinderclient's `quota-update --skip-validation False`) refuses it instead."""
    cloud.create_volume(1)
    cloud.create_volume(1)
    refused = cloud.request("PUT", "/v3/os-quota-sets/admin?skip_validation=False",
                            json={"quota_set": {"volumes": 1}})
    assert_fault(refused, 400, "badRequest", "Quota volumes limit must be equal or greater than existing "
                                             "resources. Current usage is 2 and the requested limit is 1.")
    assert set_quota(cloud, volumes=1)["volumes"] == 1
    assert_over_limit(cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1}}),
                      "VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded for quota 'volumes'.")
    assert in_use(cloud, "volumes") == 2


def test_per_volume_limit(cloud: Cloud) -> None:
    set_quota(cloud, per_volume_gigabytes=5)
    assert_over_limit(cloud.request("POST", "/v3/volumes", json={"volume": {"size": 6}}),
                      "VolumeSizeExceedsLimit: Requested volume size 6G is larger than maximum allowed limit 5G.")
    volume = cloud.create_volume(5)
    assert_over_limit(action(cloud, volume["id"], {"os-extend": {"new_size": 7}}),
                      "VolumeSizeExceedsLimit: Requested volume size 7G is larger than maximum allowed limit 5G.")
    assert cloud.wait_volume(volume["id"], "available")["size"] == 5
    assert in_use(cloud, "gigabytes") == 5


def test_absolute_limits_reflect_usage(cloud: Cloud) -> None:
    set_quota(cloud, volumes=7, gigabytes=70, snapshots=3)
    volume = cloud.create_volume(2)
    snapshot(cloud, volume["id"])
    absolute = cloud.request("GET", "/v3/limits").json()["limits"]["absolute"]
    assert absolute == {
        "maxTotalVolumes": 7, "maxTotalSnapshots": 3, "maxTotalVolumeGigabytes": 70, "maxTotalBackups": 10,
        "maxTotalBackupGigabytes": 1000, "totalVolumesUsed": 1, "totalGigabytesUsed": 4, "totalSnapshotsUsed": 1,
        "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0,
    }
    other = cloud.request("GET", "/v3/limits?project_id=someone").json()["limits"]["absolute"]
    assert other["totalVolumesUsed"] == 0 and other["maxTotalVolumes"] == 10
    old = cloud.request("GET", "/v3/limits?project_id=someone", headers=headers("3.38")).json()
    assert old["limits"]["absolute"]["totalVolumesUsed"] == 1  # project_id needs 3.39
