"""The unmodified `cinder` CLI (python-cinderclient 9.10.0) against a running `cinderblock serve`."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import SERVICE_CACHE, UUID_RE, Server, properties, table_rows


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def names(output: str) -> set[str]:
    return {row.get("Name", "") for row in table_rows(output)}


def error_of(proc: object) -> str:
    return getattr(proc, "stdout", "") + getattr(proc, "stderr", "")


# --- volume types --------------------------------------------------------------------------------
def test_type_create_show_list_and_extra_specs(server: Server) -> None:
    name = unique("gold")
    created = table_rows(server.cinder("type-create", "--description", "fast disks", name).stdout)
    assert [(r["Name"], r["Description"], r["Is_Public"]) for r in created] == [(name, "fast disks", "True")]
    type_id = created[0]["ID"]
    assert UUID_RE.fullmatch(type_id)

    assert name in names(server.cinder("type-list").stdout)
    shown = properties(server.cinder("type-show", name).stdout)
    assert (shown["id"], shown["name"], shown["is_public"]) == (type_id, name, "True")

    server.cinder("type-key", name, "set", "volume_backend_name=local", "custom:tier=gold", "custom:drop=me")
    specs = server.ok("GET", f"/types/{type_id}/extra_specs")["extra_specs"]
    assert specs == {"volume_backend_name": "local", "custom:tier": "gold", "custom:drop": "me"}
    server.cinder("type-key", type_id, "unset", "custom:drop")  # by id this time
    listed = {r["Name"]: r["extra_specs"] for r in table_rows(server.cinder("extra-specs-list").stdout)}
    assert "custom:tier" in listed[name] and "custom:drop" not in listed[name]
    assert "'volume_backend_name': 'local'" in listed[name]
    shown = properties(server.cinder("type-show", name).stdout)
    assert "custom:tier" in shown["extra_specs"] and "custom:drop" not in shown["extra_specs"]

    # A volume of the type lands on the backend the spec names; the type is then immutable.
    volume = properties(server.cinder("create", "--volume-type", name, "--name", unique("typed"), "1").stdout)
    assert volume["volume_type"] == name
    ready = server.wait_volume(volume["id"], "available")
    assert ready["os-vol-host-attr:host"].split("#")[0].endswith("@local")
    refused = server.cinder("type-key", name, "set", "custom:more=x", expect=1)
    assert "Volume Type is currently in use" in error_of(refused)

    duplicate = server.cinder("type-create", name, expect=1)
    assert "already exists" in error_of(duplicate) and "409" in error_of(duplicate)
    in_use = server.cinder("type-delete", name, expect=1)
    assert "still in use" in error_of(in_use)
    server.cinder("delete", volume["id"])
    server.wait_gone(f"/volumes/{volume['id']}")
    server.cinder("type-delete", name)
    assert server.api("GET", f"/types/{type_id}").status_code == 404
    assert name not in names(server.cinder("type-list").stdout)


def test_private_type_access(server: Server) -> None:
    name = unique("private")
    created = table_rows(server.cinder("type-create", "--is-public", "false", name).stdout)
    assert created[0]["Is_Public"] == "False"
    type_id = created[0]["ID"]
    assert server.ok("GET", f"/types/{type_id}")["volume_type"]["os-volume-type-access:is_public"] is False

    server.cinder("type-access-add", "--volume-type", name, "--project-id", "0123abcd")
    server.cinder("type-access-add", "--volume-type", type_id, "--project-id", "4567ef")
    rows = table_rows(server.cinder("type-access-list", "--volume-type", name).stdout)
    assert sorted((r["Volume_type_ID"], r["Project_ID"]) for r in rows) == [(type_id, "0123abcd"),
                                                                          (type_id, "4567ef")]
    twice = server.cinder("type-access-add", "--volume-type", name, "--project-id", "0123abcd", expect=1)
    assert "409" in error_of(twice)

    server.cinder("type-access-remove", "--volume-type", name, "--project-id", "4567ef")
    rows = table_rows(server.cinder("type-access-list", "--volume-type", name).stdout)
    assert [r["Project_ID"] for r in rows] == ["0123abcd"]
    missing = server.cinder("type-access-remove", "--volume-type", name, "--project-id", "4567ef", expect=1)
    assert "404" in error_of(missing)

    # Public types have no access list (the CLI says so itself; the server answers 404).
    public = table_rows(server.cinder("type-create", unique("public")).stdout)[0]
    refused = server.cinder("type-access-list", "--volume-type", public["ID"], expect=1)
    assert "Failed to get access list for public volume type" in error_of(refused)
    assert server.api("GET", f"/types/{public['ID']}/os-volume-type-access").status_code == 404


# --- volumes -------------------------------------------------------------------------------------
def test_volume_lifecycle(deployed: Server) -> None:
    server = deployed  # embedded, and scale-out on PostgreSQL and MariaDB
    name = unique("vol")
    created = properties(server.cinder("create", "--name", name, "--description", "d1",
                                       "--metadata", "a=1", "b=2", "1").stdout)
    assert (created["name"], created["size"]) == (name, "1")
    assert created["status"] in ("creating", "available")  # the CLI shows a GET made right after
    volume_id = created["id"]
    server.wait_volume(volume_id, "available")

    listed = {r["ID"]: r for r in table_rows(server.cinder("list").stdout)}
    assert (listed[volume_id]["Name"], listed[volume_id]["Status"], listed[volume_id]["Size"]) == (
        name, "available", "1")
    shown = properties(server.cinder("show", name).stdout)
    assert (shown["id"], shown["status"], shown["description"], shown["bootable"]) == (
        volume_id, "available", "d1", "false")
    assert shown["volume_type"] == "__DEFAULT__"

    new_name = unique("renamed")
    server.cinder("rename", "--description", "d2", name, new_name)
    server.cinder("metadata", new_name, "set", "c=3", "a=9")
    server.cinder("metadata", new_name, "unset", "b")
    volume = server.ok("GET", f"/volumes/{volume_id}")["volume"]
    assert (volume["name"], volume["description"]) == (new_name, "d2")
    assert volume["metadata"] == {"a": "9", "c": "3"}

    server.cinder("extend", new_name, "3")
    assert server.wait_volume(volume_id, "available")["size"] == 3
    assert properties(server.cinder("show", volume_id).stdout)["size"] == "3"

    server.cinder("reset-state", "--state", "error", new_name)
    assert server.ok("GET", f"/volumes/{volume_id}")["volume"]["status"] == "error"
    server.cinder("reset-state", "--state", "available", "--attach-status", "detached", volume_id)
    volume = server.ok("GET", f"/volumes/{volume_id}")["volume"]
    assert volume["status"] == "available" and volume["attachments"] == []
    bad = server.cinder("reset-state", "--state", "nonsense", volume_id, expect=1)
    assert "Invalid volume status" in error_of(bad)

    server.cinder("delete", new_name)
    server.wait_gone(f"/volumes/{volume_id}")
    gone = server.cinder("show", volume_id, expect=1)
    assert f"No volume with a name or ID of '{volume_id}' exists." in error_of(gone)


def test_create_with_type_from_snapshot_and_clone(deployed: Server) -> None:
    server = deployed  # embedded, and scale-out on PostgreSQL and MariaDB
    type_name = unique("silver")
    server.cinder("type-create", type_name)
    server.cinder("type-key", type_name, "set", "volume_backend_name=local")
    source = properties(server.cinder("create", "--volume-type", type_name, "--name", unique("src"), "1").stdout)
    server.wait_volume(source["id"], "available")

    snap_name = unique("snap")
    snap = properties(server.cinder("snapshot-create", "--name", snap_name, "--description", "first",
                                   source["id"]).stdout)
    assert snap["volume_id"] == source["id"] and snap["size"] == "1"
    server.wait_snapshot(snap["id"], "available")
    listed = {r["ID"]: r for r in table_rows(server.cinder("snapshot-list").stdout)}
    assert (listed[snap["id"]]["Status"], listed[snap["id"]]["Name"], listed[snap["id"]]["Volume ID"]) == (
        "available", snap_name, source["id"])
    shown = properties(server.cinder("snapshot-show", snap_name).stdout)
    assert (shown["id"], shown["description"], shown["os-extended-snapshot-attributes:progress"]) == (
        snap["id"], "first", "100%")
    renamed = unique("snap-renamed")
    server.cinder("snapshot-rename", snap_name, renamed)
    assert server.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["name"] == renamed

    from_snap = properties(server.cinder("create", "--snapshot-id", snap["id"], "--name", unique("fs"), "2").stdout)
    clone = properties(server.cinder("create", "--source-volid", source["id"], "--name", unique("clone")).stdout)
    from_snap_ready = server.wait_volume(from_snap["id"], "available")
    clone_ready = server.wait_volume(clone["id"], "available")
    assert (from_snap_ready["snapshot_id"], from_snap_ready["size"], from_snap_ready["volume_type"]) == (
        snap["id"], 2, type_name)
    assert (clone_ready["source_volid"], clone_ready["size"], clone_ready["volume_type"]) == (
        source["id"], 1, type_name)

    # An unknown snapshot or source volume is a 404 naming it.
    for option in ("--snapshot-id", "--source-volid"):
        missing = server.cinder("create", option, "00000000-0000-0000-0000-000000000000", "1", expect=1)
        assert "00000000-0000-0000-0000-000000000000 could not be found" in error_of(missing)

    # A volume with snapshots cannot be deleted.
    refused = server.cinder("delete", source["id"], expect=1)
    assert "must not be migrating, attached, belong to a group, have snapshots" in error_of(refused)
    assert server.ok("GET", f"/volumes/{source['id']}")["volume"]["status"] == "available"

    server.cinder("snapshot-reset-state", "--state", "error", renamed)
    assert server.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == "error"
    server.cinder("snapshot-reset-state", renamed)  # default state: available
    assert server.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == "available"

    server.cinder("snapshot-delete", renamed)
    server.wait_gone(f"/snapshots/{snap['id']}")
    assert snap["id"] not in {r["ID"] for r in table_rows(server.cinder("snapshot-list").stdout)}
    server.cinder("delete", source["id"], from_snap["id"], clone["id"])
    for ident in (source["id"], from_snap["id"], clone["id"]):
        server.wait_gone(f"/volumes/{ident}")


def test_force_delete(server: Server) -> None:
    volume = server.create_volume(1, name=unique("stuck"))
    server.cinder("reset-state", "--state", "attaching", volume["id"])
    refused = server.cinder("delete", volume["id"], expect=1)
    assert "Volume status must be available or error" in error_of(refused)
    server.cinder("force-delete", volume["id"])
    server.wait_gone(f"/volumes/{volume['id']}")


# --- revert --------------------------------------------------------------------------------------
def test_revert_to_snapshot(server: Server) -> None:
    volume = server.create_volume(1, name=unique("rev"))
    first = server.create_snapshot(volume["id"], name=unique("s1"))
    second = server.create_snapshot(volume["id"], name=unique("s2"))

    # Below 3.40 the command does not exist in the client, and the action does not exist in the server.
    hidden = server.cinder("revert-to-snapshot", second["id"], version="3.39", expect=2)
    assert "invalid choice: 'revert-to-snapshot'" in hidden.stderr
    action = {"revert": {"snapshot_id": second["id"]}}
    assert server.api("POST", f"/volumes/{volume['id']}/action", version="3.39", json=action).status_code == 404

    not_latest = server.cinder("revert-to-snapshot", first["id"], version="3.40", expect=1)
    assert "is not the latest snapshot" in error_of(not_latest) and "400" in error_of(not_latest)

    server.cinder("revert-to-snapshot", second["id"], version="3.40")
    server.wait_volume(volume["id"], "available")
    assert server.wait_snapshot(second["id"], "available")["status"] == "available"
    server.cinder("revert-to-snapshot", second["name"])  # latest microversion, by name
    server.wait_volume(volume["id"], "available")

    # A volume that is not available: 409, as Cinder.
    server.cinder("reset-state", "--state", "error", volume["id"])
    conflict = server.cinder("revert-to-snapshot", second["id"], expect=1)
    assert "409" in error_of(conflict) and "must be available" in error_of(conflict)
    assert server.api("POST", f"/volumes/{volume['id']}/action", json=action).status_code == 409
    server.cinder("reset-state", "--state", "available", volume["id"])

    server.cinder("extend", volume["id"], "2")
    server.wait_volume(volume["id"], "available")
    sizes = server.cinder("revert-to-snapshot", second["id"], expect=1)
    assert "differs from snapshot size" in error_of(sizes) and "400" in error_of(sizes)

    server.cinder("snapshot-delete", first["id"], second["id"])
    server.wait_gone(f"/snapshots/{first['id']}")
    server.wait_gone(f"/snapshots/{second['id']}")
    server.cinder("delete", volume["id"])
    server.wait_gone(f"/volumes/{volume['id']}")


# --- bad input -----------------------------------------------------------------------------------
def test_errors_for_bad_input(server: Server) -> None:
    unknown_type = server.cinder("create", "--volume-type", "no-such-type", "1", expect=1)
    assert "Volume type no-such-type could not be found" in error_of(unknown_type)
    assert "404" in error_of(unknown_type)

    zero = server.cinder("create", "0", expect=1)
    assert "size" in error_of(zero) and "400" in error_of(zero)
    # The CLI refuses "abc" itself; the server refuses it too.
    assert "invalid int value: 'abc'" in server.cinder("create", "abc", expect=2).stderr
    for size in ("abc", -1, "1.5", True):
        response = server.api("POST", "/volumes", json={"volume": {"size": size}})
        assert response.status_code == 400, (size, response.text)
        assert "size" in response.json()["badRequest"]["message"]

    volume = server.create_volume(2)
    smaller = server.cinder("extend", volume["id"], "1", expect=1)
    assert "New size for extend must be greater than current size" in error_of(smaller)
    same = server.cinder("extend", volume["id"], "2", expect=1)
    assert "must be greater than current size" in error_of(same)

    zone = server.cinder("create", "--availability-zone", "atlantis", "1", expect=1)
    assert "Availability zone 'atlantis' is invalid" in error_of(zone)

    missing = server.cinder("show", "no-such-volume", expect=1)
    assert "No volume with a name or ID of 'no-such-volume' exists." in error_of(missing)
    assert "could not be found" in server.api("GET", f"/volumes/{uuid.uuid4()}").json()["itemNotFound"]["message"]
    server.cinder("delete", volume["id"])
    server.wait_gone(f"/volumes/{volume['id']}")


# --- quotas and limits ---------------------------------------------------------------------------
def test_quotas_and_limits(server: Server) -> None:
    project = "abcdef01"
    defaults = properties(server.cinder("quota-defaults", project).stdout)
    assert (defaults["volumes"], defaults["snapshots"], defaults["gigabytes"]) == ("10", "10", "1000")
    assert defaults["per_volume_gigabytes"] == "-1"

    server.cinder("quota-update", "--volumes", "1", "--gigabytes", "3", project)
    shown = properties(server.cinder("quota-show", project).stdout)
    assert (shown["volumes"], shown["gigabytes"], shown["snapshots"]) == ("1", "3", "10")

    first = properties(server.cinder("create", "1", project=project).stdout)
    server.wait_volume(first["id"], "available", token=f"admin:{project}")
    over = server.cinder("create", "1", project=project, expect=1)
    assert "VolumeLimitExceeded" in error_of(over) and "413" in error_of(over)

    server.cinder("quota-update", "--volumes", "5", project)
    too_big = server.cinder("create", "5", project=project, expect=1)
    assert "exceeds allowed gigabytes quota" in error_of(too_big) and "413" in error_of(too_big)
    assert "VolumeSizeExceedsAvailableQuota" in error_of(too_big)
    extend = server.cinder("extend", first["id"], "4", project=project, expect=1)
    assert "exceeds allowed gigabytes quota" in error_of(extend)

    limits = {r["Name"]: r["Value"] for r in table_rows(server.cinder("absolute-limits", project=project).stdout)}
    assert (limits["maxTotalVolumes"], limits["maxTotalVolumeGigabytes"]) == ("5", "3")
    assert (limits["totalVolumesUsed"], limits["totalGigabytesUsed"]) == ("1", "1")

    # Lowering a quota below usage is refused.
    below = server.cinder("quota-update", "--volumes", "0", project, expect=1)
    assert "400" in error_of(below)

    server.cinder("delete", first["id"], project=project)
    server.wait_gone(f"/volumes/{first['id']}", token=f"admin:{project}")
    limits = {r["Name"]: r["Value"] for r in table_rows(server.cinder("absolute-limits", project=project).stdout)}
    assert (limits["totalVolumesUsed"], limits["totalGigabytesUsed"]) == ("0", "0")


# --- services, zones, pools ----------------------------------------------------------------------
def test_services_zones_and_pools(server: Server) -> None:
    services = table_rows(server.cinder("service-list").stdout)
    by_binary = {row["Binary"]: row for row in services}
    assert set(by_binary) == {"cinder-scheduler", "cinder-volume"}
    volume_host = by_binary["cinder-volume"]["Host"]
    assert volume_host.endswith("@local")
    assert all(row["Status"] == "enabled" and row["State"] == "up" for row in services)

    disabled = table_rows(server.cinder("service-disable", "--reason", "maintenance window", volume_host,
                                        "cinder-volume").stdout)
    assert (disabled[0]["Status"], disabled[0]["Disabled Reason"]) == ("disabled", "maintenance window")
    row = {r["Binary"]: r for r in table_rows(server.cinder("service-list").stdout)}["cinder-volume"]
    assert (row["Status"], row["Disabled Reason"]) == ("disabled", "maintenance window")
    api_view = server.ok("GET", "/os-services?binary=cinder-volume")["services"][0]
    assert (api_view["status"], api_view["disabled_reason"]) == ("disabled", "maintenance window")

    # The scheduler skips a disabled backend (it caches service states for a moment: wait that out).
    time.sleep(SERVICE_CACHE + 0.3)
    volume = server.create_volume(1, wait=False)
    failed = server.wait_volume(volume["id"], "available", "error")
    assert failed["status"] == "error"

    server.cinder("service-enable", volume_host, "cinder-volume")
    row = {r["Binary"]: r for r in table_rows(server.cinder("service-list").stdout)}["cinder-volume"]
    assert (row["Status"], row["Disabled Reason"]) == ("enabled", "-")
    time.sleep(SERVICE_CACHE + 0.3)
    placed = server.create_volume(1)
    assert placed["status"] == "available"
    server.cinder("delete", volume["id"], placed["id"])
    unknown = server.cinder("service-disable", "nohost@none", "cinder-volume", expect=1)
    assert "404" in error_of(unknown)

    zones = table_rows(server.cinder("availability-zone-list").stdout)
    assert [(z["Name"], z["Status"]) for z in zones] == [("nova", "available")]

    pools = properties(server.cinder("get-pools", "--detail").stdout)
    assert pools["name"] == f"{volume_host}#volumes"
    assert pools["volume_backend_name"] == "local" and pools["storage_protocol"] == "local"
    assert float(pools["total_capacity_gb"]) > 0 and float(pools["free_capacity_gb"]) > 0
    plain = table_rows(server.cinder("get-pools").stdout)
    assert [(r["Property"], r["Value"]) for r in plain] == [("name", f"{volume_host}#volumes")]


# --- microversions -------------------------------------------------------------------------------
def test_microversion_variations(server: Server) -> None:
    volume = server.create_volume(1, name=unique("mv"))
    base = properties(server.cinder("show", volume["id"], version="3.0").stdout)
    latest = properties(server.cinder("show", volume["id"], version="3.71").stdout)
    assert base["id"] == latest["id"] == volume["id"]
    for key in ("volume_type_id", "group_id", "shared_targets", "consumes_quota"):
        assert key not in base and key in latest, key
    listed = {r["ID"]: r for r in table_rows(server.cinder("list", version="3.0").stdout)}
    assert listed[volume["id"]]["Status"] == "available"

    # What the server answers at each version.
    assert server.api("GET", "/volumes/summary", version=None).status_code == 404
    assert server.api("GET", "/volumes/summary", version="3.12").status_code == 200
    too_new = server.api("GET", "/volumes", version="3.72")
    assert too_new.status_code == 406 and too_new.headers["OpenStack-API-Version"] == "volume 3.72"
    assert server.api("GET", "/volumes", version=None).headers["OpenStack-API-Version"] == "volume 3.0"
    assert server.api("GET", "/volumes", version="latest").headers["OpenStack-API-Version"] == "volume 3.71"
    server.cinder("delete", volume["id"])
    server.wait_gone(f"/volumes/{volume['id']}")


# --- project id in the URL and paging ------------------------------------------------------------
PROJECT = "0123abcd"


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service whose pages hold two items, so every list of more than two is paginated."""
    running = Server(tmp_path_factory.mktemp("paged"), "[DEFAULT]\nosapi_max_limit = 2\n", name="paged").start()
    yield running
    running.stop()


def test_project_id_in_url(server: Server) -> None:
    endpoint = f"{server.endpoint}/%(project_id)s"
    token = f"admin:{PROJECT}"
    created = properties(server.cinder("create", "--name", "in-project", "1", project=PROJECT,
                                       endpoint=endpoint).stdout)
    assert created["os-vol-tenant-attr:tenant_id"] == PROJECT
    server.wait_volume(created["id"], "available", token=token)
    listed = table_rows(server.cinder("list", project=PROJECT, endpoint=endpoint).stdout)
    assert [r["ID"] for r in listed] == [created["id"]]
    shown = properties(server.cinder("show", "in-project", project=PROJECT, endpoint=endpoint).stdout)
    assert shown["status"] == "available"
    snap = properties(server.cinder("snapshot-create", "in-project", project=PROJECT, endpoint=endpoint).stdout)
    server.wait_snapshot(snap["id"], "available", token=token)
    server.cinder("snapshot-delete", snap["id"], project=PROJECT, endpoint=endpoint)
    server.wait_gone(f"/snapshots/{snap['id']}", token=token)
    assert table_rows(server.cinder("type-list", project=PROJECT, endpoint=endpoint).stdout)

    # Links keep the project segment; the project-less form and the URL form see the same volume.
    body = server.ok("GET", f"{server.url}/v3/{PROJECT}/volumes/{created['id']}", token=token)["volume"]
    assert body["links"][0]["href"] == f"{server.url}/v3/{PROJECT}/volumes/{created['id']}"
    assert body["links"][1]["href"] == f"{server.url}/{PROJECT}/volumes/{created['id']}"
    assert server.ok("GET", f"/volumes/{created['id']}", token=token)["volume"]["id"] == created["id"]
    # Another project's token on this URL: Cinder's "Malformed request url"; a non-hex segment routes nowhere.
    mismatch = server.api("GET", f"{server.url}/v3/{PROJECT}/volumes", token="admin:4567ef")
    assert mismatch.status_code == 400 and mismatch.json()["badRequest"]["message"] == "Malformed request url"
    assert server.api("GET", f"{server.url}/v3/admin/volumes").status_code == 404
    # The admin's project does not see the volume without all_tenants.
    assert created["id"] not in {r["ID"] for r in table_rows(server.cinder("list").stdout)}
    assert created["id"] in {r["ID"] for r in table_rows(server.cinder("list", "--all-tenants").stdout)}

    server.cinder("delete", "in-project", project=PROJECT, endpoint=endpoint)
    server.wait_gone(f"/volumes/{created['id']}", token=token)


def test_next_links_are_absolute_and_followable(paged: Server) -> None:
    token = f"admin:{PROJECT}"
    ids = {paged.create_volume(1, token=token, wait=False, name=f"p{i}")["id"] for i in range(5)}
    for ident in ids:
        paged.wait_volume(ident, "available", token=token)
    snap_ids = {paged.create_snapshot(ident, token=token)["id"] for ident in list(ids)[:3]}

    # Over HTTP: follow every next link verbatim, with and without the project segment.
    for prefix in (f"{paged.url}/v3/{PROJECT}", f"{paged.url}/v3"):
        for collection in ("volumes", "volumes/detail", "snapshots/detail"):
            url: str | None = f"{prefix}/{collection}?sort=name:asc"
            seen: list[str] = []
            pages = 0
            while url:
                body = paged.ok("GET", url, token=token)
                key = collection.split("/")[0]
                assert len(body[key]) <= 2
                seen += [item["id"] for item in body[key]]
                links = body.get(f"{key}_links", [])
                url = links[0]["href"] if links else None
                if url:
                    assert url.startswith(f"{prefix}/{collection}?"), url
                    assert "sort=name%3Aasc" in url or "sort=name:asc" in url
                pages += 1
                assert pages < 10
            expected = ids if key == "volumes" else snap_ids
            assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)), collection
    names_page = paged.ok("GET", "/volumes?sort=name:asc&limit=2", token=token)["volumes"]
    assert [v["name"] for v in names_page] == ["p0", "p1"]

    # The CLI follows them: all five, through pages of two, in both URL forms.
    for endpoint in (f"{paged.endpoint}/%(project_id)s", paged.endpoint):
        listed = table_rows(paged.cinder("list", project=PROJECT, endpoint=endpoint).stdout)
        assert {r["ID"] for r in listed} == ids
        limited = table_rows(paged.cinder("list", "--limit", "3", project=PROJECT, endpoint=endpoint).stdout)
        assert len(limited) == 3 and {r["ID"] for r in limited} <= ids
        snaps = table_rows(paged.cinder("snapshot-list", project=PROJECT, endpoint=endpoint).stdout)
        assert {r["ID"] for r in snaps} == snap_ids

    for snap_id in snap_ids:
        paged.ok("DELETE", f"/snapshots/{snap_id}", token=token)
    for snap_id in snap_ids:
        paged.wait_gone(f"/snapshots/{snap_id}", token=token)
    for ident in ids:
        paged.ok("DELETE", f"/volumes/{ident}", token=token)
