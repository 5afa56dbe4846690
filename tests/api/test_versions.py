"""Version discovery and microversion negotiation (reference §1.3, §1.4, §8.1-2)."""
from __future__ import annotations

import pytest

from tests.api.helpers import assert_fault, headers
from tests.conftest import Cloud

EXPECTED_VERSION = {
    "id": "v3.0", "status": "CURRENT", "version": "3.71", "min_version": "3.0",
    "updated": "2023-08-31T00:00:00Z",
    "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
              {"rel": "self", "href": "http://cinderblock.test/v3/"}],
    "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
}


def assert_common_headers(response, version: str) -> None:  # type: ignore[no-untyped-def]
    assert response.headers["OpenStack-API-Version"] == f"volume {version}"
    assert response.headers["Vary"] == "OpenStack-API-Version"
    request_id = response.headers["x-openstack-request-id"]
    assert request_id.startswith("req-") and len(request_id) == len("req-") + 36
    assert response.headers["x-compute-request-id"] == request_id


def test_root_is_300_without_token(cloud: Cloud) -> None:
    response = cloud.client.get("/")
    assert response.status_code == 300
    assert response.json() == {"versions": [EXPECTED_VERSION]}
    assert_common_headers(response, "3.0")


@pytest.mark.parametrize("path", ["/v3", "/v3/"])
def test_v3_document_is_200_without_token(cloud: Cloud, path: str) -> None:
    response = cloud.client.get(path, follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == {"versions": [EXPECTED_VERSION]}
    assert_common_headers(response, "3.0")


def test_no_header_means_3_0(cloud: Cloud) -> None:
    response = cloud.client.get("/v3/volumes", headers=headers(version=None))
    assert response.status_code == 200
    assert_common_headers(response, "3.0")


@pytest.mark.parametrize("value,echo", [
    ("volume latest", "3.71"), ("volume 3.71", "3.71"), ("volume 3.0", "3.0"), ("volume 3.27", "3.27"),
    ("compute 2.1, volume 3.5", "3.5"), ("volume  3.40 ", "3.40"),
])
def test_header_negotiation(cloud: Cloud, value: str, echo: str) -> None:
    response = cloud.client.get("/v3/volumes", headers={"X-Auth-Token": "a:b", "OpenStack-API-Version": value})
    assert response.status_code == 200, response.text
    assert_common_headers(response, echo)


@pytest.mark.parametrize("requested", ["3.72", "2.0", "4.0", "3.100"])
def test_out_of_range_is_406(cloud: Cloud, requested: str) -> None:
    response = cloud.client.get("/v3/volumes", headers=headers(requested))
    assert_fault(response, 406, "computeFault",
                 f"Version {requested} is not supported by the API. Minimum is 3.0 and maximum is 3.71.")
    assert_common_headers(response, requested)


@pytest.mark.parametrize("value", ["volume 3.01", "volume 3.x", "volume 3", "volume", "volume 03.1"])
def test_bad_version_string_is_400(cloud: Cloud, value: str) -> None:
    response = cloud.client.get("/v3/volumes", headers={"X-Auth-Token": "a:b", "OpenStack-API-Version": value})
    assert_fault(response, 400, "badRequest")
    assert response.headers["Vary"] == "OpenStack-API-Version"


def test_header_without_volume_is_400(cloud: Cloud) -> None:
    response = cloud.client.get("/v3/volumes", headers={"X-Auth-Token": "a:b",
                                                        "OpenStack-API-Version": "compute 2.1"})
    assert_fault(response, 400, "badRequest", contains="volume")


def test_headers_on_faults_and_version_documents(cloud: Cloud) -> None:
    for response, version in [
        (cloud.client.get("/", headers=headers("3.50", None)), "3.50"),
        (cloud.client.get("/v3/", headers=headers("3.50", None)), "3.50"),
        (cloud.client.get("/v3/volumes/nope", headers=headers("3.12")), "3.12"),
        (cloud.client.get("/v3/volumes"), "3.0"),  # 401
        (cloud.client.post("/v3/volumes", headers=headers("3.60"), content=b"{"), "3.60"),
    ]:
        assert_common_headers(response, version)


@pytest.mark.parametrize("version,status", [("3.11", 404), ("3.12", 200), ("3.71", 200)])
def test_volume_summary_needs_3_12(cloud: Cloud, version: str, status: int) -> None:
    response = cloud.client.get("/v3/volumes/summary", headers=headers(version))
    assert response.status_code == status, response.text
    if status == 404:
        assert_fault(response, 404, "itemNotFound", "The resource could not be found.")
    else:
        summary = {"total_count": 0, "total_size": 0, **({"metadata": {}} if version == "3.71" else {})}
        assert response.json() == {"volume-summary": summary}


def test_summary_metadata_only_from_3_36(cloud: Cloud) -> None:
    cloud.create_volume(2, metadata={"k": "v"})
    cloud.create_volume(3, metadata={"k": "w"})
    old = cloud.client.get("/v3/volumes/summary", headers=headers("3.35")).json()
    assert old == {"volume-summary": {"total_count": 2, "total_size": 5}}
    new = cloud.client.get("/v3/volumes/summary", headers=headers("3.36")).json()
    assert new["volume-summary"]["total_size"] == 5
    assert sorted(new["volume-summary"]["metadata"]["k"]) == ["v", "w"]


def test_revert_needs_3_40(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    response = cloud.client.post(f"/v3/volumes/{volume['id']}/action", headers=headers("3.39"),
                                 json={"revert": {"snapshot_id": "x"}})
    assert_fault(response, 404, "itemNotFound", "The resource could not be found.")
