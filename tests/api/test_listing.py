"""Pagination, sorting and filters of volume/snapshot lists (reference §2, §4.1)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.helpers import assert_fault, headers, snapshot
from tests.conftest import Cloud


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [v["name"] for v in response.json()["volumes"]]


@pytest.fixture
def seven(cloud: Cloud) -> list[dict[str, Any]]:
    """Seven volumes v0..v6 (created in that order), sizes 1,2,1,2,…, v3 with metadata."""
    volumes = []
    for index in range(7):
        metadata = {"k": "v"} if index == 3 else {"other": str(index)}
        volumes.append(cloud.create_volume(1 + index % 2, name=f"v{index}", metadata=metadata))
    return volumes


def test_default_order_is_newest_first(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    assert names(cloud.request("GET", "/v3/volumes")) == [f"v{i}" for i in range(6, -1, -1)]


@pytest.mark.parametrize("prefix", ["/v3", "/v3/abc123"])
@pytest.mark.parametrize("collection", ["volumes", "volumes/detail"])
def test_next_links_followable_to_the_end(cloud: Cloud, seven: list[dict[str, Any]], prefix: str,
                                          collection: str) -> None:
    token = {"X-Auth-Token": "admin:abc123"} if prefix != "/v3" else {}
    if prefix != "/v3":  # make the project own the volumes
        for volume in seven:
            cloud.request("DELETE", f"/v3/volumes/{volume['id']}")
        for index in range(7):
            response = cloud.request("POST", f"{prefix}/volumes", headers=token,
                                     json={"volume": {"size": 1, "name": f"v{index}"}})
            assert response.status_code == 202
    url = f"{prefix}/{collection}?limit=3&sort=name:asc"
    pages: list[list[str]] = []
    while url:
        response = cloud.request("GET", url, headers=token)
        pages.append(names(response))
        links = response.json().get("volumes_links")
        if links is None:
            break
        assert links[0]["rel"] == "next"
        href = links[0]["href"]
        parts = urlsplit(href)
        assert parts.scheme == "http" and parts.netloc == "cinderblock.test"
        assert parts.path == f"{prefix}/{collection}"
        assert "limit=3" in parts.query and "sort=name%3Aasc" in parts.query
        url = f"{parts.path}?{parts.query}"
    assert pages == [["v0", "v1", "v2"], ["v3", "v4", "v5"], ["v6"]]


def test_no_next_link_when_page_not_full(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    assert "volumes_links" not in cloud.request("GET", "/v3/volumes?limit=8").json()
    full = cloud.request("GET", "/v3/volumes?limit=7").json()
    assert "volumes_links" in full  # Cinder links whenever the page is full


def test_marker_offset_and_limit(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    ids = {v["name"]: v["id"] for v in seven}
    assert names(cloud.request("GET", f"/v3/volumes?sort=name:asc&marker={ids['v2']}&limit=2")) == ["v3", "v4"]
    assert names(cloud.request("GET", "/v3/volumes?sort=name:asc&offset=5")) == ["v5", "v6"]
    assert names(cloud.request("GET", "/v3/volumes?sort=name:asc&limit=0")) == []
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_fault(cloud.request("GET", f"/v3/volumes?marker={unknown}"), 404, "itemNotFound", contains=unknown)


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "limit=1.5", "offset=-1", "offset=x"])
def test_bad_limit_or_offset(cloud: Cloud, query: str) -> None:
    assert_fault(cloud.request("GET", f"/v3/volumes?{query}"), 400, "badRequest")


def test_sort_forms(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    by_size_then_name = names(cloud.request("GET", "/v3/volumes/detail?sort=size:asc,name:desc"))
    assert by_size_then_name == ["v6", "v4", "v2", "v0", "v5", "v3", "v1"]
    # `size` alone defaults to desc; name ties broken by the next key.
    default_dir = names(cloud.request("GET", "/v3/volumes?sort=name:asc,size"))
    assert default_dir == [f"v{i}" for i in range(7)]
    legacy = names(cloud.request("GET", "/v3/volumes?sort_key=name&sort_dir=asc"))
    assert legacy == [f"v{i}" for i in range(7)]
    desc = names(cloud.request("GET", "/v3/volumes?sort_key=name"))
    assert desc == [f"v{i}" for i in range(6, -1, -1)]


@pytest.mark.parametrize("query", ["sort=name&sort_key=size", "sort=name&sort_dir=asc", "sort=bogus",
                                   "sort=name:up", "sort_key=bogus", "sort_dir=sideways"])
def test_bad_sort(cloud: Cloud, query: str) -> None:
    assert_fault(cloud.request("GET", f"/v3/volumes?{query}"), 400, "badRequest")


def test_with_count(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    body = cloud.request("GET", "/v3/volumes?with_count=true&limit=2").json()
    assert body["count"] == 7 and len(body["volumes"]) == 2
    filtered = cloud.request("GET", "/v3/volumes/detail?with_count=true&size=2").json()
    assert filtered["count"] == 3
    old = cloud.request("GET", "/v3/volumes?with_count=true", headers=headers("3.44")).json()
    assert "count" not in old
    snaps = cloud.request("GET", "/v3/snapshots?with_count=true").json()
    assert snaps["count"] == 0


def test_filters(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    assert names(cloud.request("GET", "/v3/volumes?name=v3")) == ["v3"]
    assert names(cloud.request("GET", "/v3/volumes?size=2&sort=name:asc")) == ["v1", "v3", "v5"]
    assert names(cloud.request("GET", "/v3/volumes?status=available&size=1&sort=name:asc")) == [
        "v0", "v2", "v4", "v6"]
    assert names(cloud.request("GET", "/v3/volumes?status=error")) == []
    assert names(cloud.request("GET", "/v3/volumes?metadata={'k':'v'}")) == ["v3"]
    assert names(cloud.request("GET", "/v3/volumes?metadata={'k':'nope'}")) == []
    assert names(cloud.request("GET", "/v3/volumes/detail?metadata={'other':'5'}")) == ["v5"]
    assert_fault(cloud.request("GET", "/v3/volumes?metadata=notadict"), 400, "badRequest")


def test_like_filter_from_3_34(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    cloud.create_volume(1, name="other-v1x")
    member = "u:admin:member"
    like = cloud.request("GET", "/v3/volumes?name~=1&sort=name:asc", headers=headers("3.34", member))
    assert names(like) == ["other-v1x", "v1"]
    # Below 3.34 `name~` is not a LIKE filter: admin callers have it ignored.
    old = cloud.request("GET", "/v3/volumes?name~=1", headers=headers("3.33"))
    assert len(names(old)) == 8
    assert_fault(cloud.request("GET", "/v3/volumes?name~=1", headers=headers("3.33", member)), 400,
                 "badRequest", contains="name~")


def test_unknown_filter_for_non_admin(cloud: Cloud, seven: list[dict[str, Any]]) -> None:
    member = "u:admin:member"
    refused = cloud.request("GET", "/v3/volumes?bogus=1", headers=headers("3.31", member))
    assert_fault(refused, 400, "badRequest", "Invalid input received: Invalid filters bogus are found in query "
                 "options.")
    ignored = cloud.request("GET", "/v3/volumes?bogus=1", headers=headers("3.30", member))
    assert len(names(ignored)) == 7
    admin = cloud.request("GET", "/v3/volumes?bogus=1", headers=headers("3.31"))
    assert admin.status_code == 200
    # all_tenants is always tolerated, and so are name and the paging keys.
    tolerated = cloud.request("GET", "/v3/volumes/detail?all_tenants=0&name=v1&limit=5&with_count=1",
                              headers=headers("3.71", member))
    assert names(tolerated) == ["v1"]
    snap = cloud.request("GET", "/v3/snapshots?bogus=1", headers=headers("3.31", member))
    assert_fault(snap, 400, "badRequest", contains="bogus")


def test_all_tenants(cloud: Cloud) -> None:
    for project in ("projA", "projB"):
        response = cloud.request("POST", "/v3/volumes", headers={"X-Auth-Token": f"admin:{project}"},
                                 json={"volume": {"size": 1, "name": project}})
        assert response.status_code == 202
    a = {"X-Auth-Token": "admin:projA"}
    assert names(cloud.request("GET", "/v3/volumes", headers=a)) == ["projA"]
    assert names(cloud.request("GET", "/v3/volumes?all_tenants=0", headers=a)) == ["projA"]
    assert sorted(names(cloud.request("GET", "/v3/volumes?all_tenants=1", headers=a))) == ["projA", "projB"]
    assert sorted(names(cloud.request("GET", "/v3/volumes/detail?all_tenants=true", headers=a))) == [
        "projA", "projB"]
    # A member's all_tenants is ignored.
    member = {"X-Auth-Token": "u:projA:member"}
    assert names(cloud.request("GET", "/v3/volumes?all_tenants=1", headers=member)) == ["projA"]


def test_snapshot_listing(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    for index in range(4):
        snapshot(cloud, volume["id"], name=f"s{index}")
    response = cloud.request("GET", "/v3/snapshots?limit=3&sort=name:asc")
    body = response.json()
    assert [s["name"] for s in body["snapshots"]] == ["s0", "s1", "s2"]
    href = body["snapshots_links"][0]["href"]
    rest = cloud.request("GET", href.replace("http://cinderblock.test", "")).json()
    assert [s["name"] for s in rest["snapshots"]] == ["s3"] and "snapshots_links" not in rest
    assert [s["name"] for s in cloud.request("GET", "/v3/snapshots/detail?name=s2").json()["snapshots"]] == ["s2"]
    by_volume = cloud.request("GET", f"/v3/snapshots?volume_id={volume['id']}").json()["snapshots"]
    assert len(by_volume) == 4


def follow(cloud: Cloud, url: str, key: str = "volumes") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while url:
        body = cloud.request("GET", url).json()
        items += body[key]
        links = body.get(f"{key}_links")
        url = links[0]["href"].replace("http://cinderblock.test", "") if links else ""
    return items


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_paging_over_null_sort_keys(cloud: Cloud, direction: str) -> None:
    """Volumes without a name sort together (first ascending, last descending) and are never skipped."""
    made = [cloud.create_volume(1, **({"name": f"n{i}"} if i % 2 else {}))["id"] for i in range(5)]
    seen = follow(cloud, f"/v3/volumes?limit=1&sort=name:{direction}")
    assert sorted(v["id"] for v in seen) == sorted(made)
    named = [v["name"] for v in seen]
    expected = [None, None, None, "n1", "n3"] if direction == "asc" else ["n3", "n1", None, None, None]
    assert named == expected
    assert [v["name"] for v in cloud.request("GET", f"/v3/volumes?sort=name:{direction}").json()["volumes"]] == expected


def test_snapshot_metadata_filter_before_paging(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    tagged = snapshot(cloud, volume["id"], metadata={"k": "v"})
    snapshot(cloud, volume["id"])
    snapshot(cloud, volume["id"])
    body = cloud.request("GET", "/v3/snapshots?metadata={'k':'v'}&limit=1&with_count=true").json()
    assert [s["id"] for s in body["snapshots"]] == [tagged["id"]] and body["count"] == 1
    assert len(follow(cloud, "/v3/snapshots?limit=1", "snapshots")) == 3


def test_time_and_bootable_filters(cloud: Cloud) -> None:
    cloud.create_volume(1, name="a")
    boot = cloud.create_volume(1, name="b")
    response = cloud.request("POST", f"/v3/volumes/{boot['id']}/action", json={"os-set_bootable": {"bootable": True}})
    assert response.status_code == 200
    assert sorted(names(cloud.request("GET", "/v3/volumes?created_at=gt:2000-01-01T00:00:00"))) == ["a", "b"]
    assert names(cloud.request("GET", "/v3/volumes?created_at=lt:2000-01-01T00:00:00")) == []
    window = "created_at=gte:2000-01-01T00:00:00Z,lt:2999-01-01T00:00:00"
    assert len(names(cloud.request("GET", f"/v3/volumes?{window}"))) == 2
    assert_fault(cloud.request("GET", "/v3/volumes?created_at=after:2000-01-01"), 400, "badRequest")
    assert_fault(cloud.request("GET", "/v3/volumes?created_at=gt:yesterday"), 400, "badRequest")
    assert names(cloud.request("GET", "/v3/volumes?bootable=true")) == ["b"]
    assert names(cloud.request("GET", "/v3/volumes?bootable=0")) == ["a"]
    assert_fault(cloud.request("GET", "/v3/volumes?bootable=maybe"), 400, "badRequest", contains="bootable")
    # Before 3.2 anything but false means true.
    assert names(cloud.request("GET", "/v3/volumes?bootable=maybe", headers=headers("3.1"))) == ["b"]
