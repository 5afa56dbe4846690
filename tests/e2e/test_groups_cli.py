"""Consistency groups and generic groups with the unmodified `cinder` CLI against `cinderblock serve`.

The seed's workflow (consisgroup-create → create --consisgroup-id → cgsnapshot-create → create-from-src
→ update → delete) plus the generic group commands (3.11–3.25, 3.58), with state checks and 4xx cases.
"""
from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.conftest import UUID_RE, Server, properties, table_rows


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(proc: Any) -> str:
    return str(proc.stdout) + str(proc.stderr)


def wait(server: Server, path: str, key: str, *statuses: str) -> dict[str, Any]:
    return server._wait(path, key, statuses, 30.0, "admin:admin")


def make_types(server: Server) -> tuple[str, str]:
    first, second = unique("t1"), unique("t2")
    for name in (first, second):
        server.cinder("type-create", name)
    return first, second


def test_consistency_group_workflow(server: Server) -> None:
    t1, t2 = make_types(server)
    cg_name = unique("cg")
    created = properties(server.cinder("consisgroup-create", "--name", cg_name, f"{t1},{t2}").stdout)
    cg_id = created["id"]
    assert UUID_RE.fullmatch(cg_id)
    cg = wait(server, f"/consistencygroups/{cg_id}", "consistencygroup", "available")
    assert len(cg["volume_types"]) == 2

    volume = properties(server.cinder("create", "--volume-type", t1, "--consisgroup-id", cg_id,
                                      "--name", unique("member"), "1").stdout)
    member = server.wait_volume(volume["id"], "available")
    assert member["consistencygroup_id"] == cg_id and member["group_id"] == cg_id
    second = server.wait_volume(properties(server.cinder(
        "create", "--volume-type", t2, "--consisgroup-id", cg_id, "1").stdout)["id"], "available")
    # A type outside the CG is refused.
    t3 = unique("t3")
    server.cinder("type-create", t3)
    refused = server.cinder("create", "--volume-type", t3, "--consisgroup-id", cg_id, "1", expect=1)
    assert "400" in error_of(refused)

    # cgsnapshot by CG name (the CLI resolves it through the list); "description": null accepted.
    snap_name = unique("cgs")
    cgsnap = properties(server.cinder("cgsnapshot-create", "--name", snap_name, cg_name).stdout)
    shown = wait(server, f"/cgsnapshots/{cgsnap['id']}", "cgsnapshot", "available")
    assert shown["consistencygroup_id"] == cg_id and "consistent" not in shown  # Cinder's keys only
    snaps = [s for s in server.ok("GET", "/snapshots/detail")["snapshots"] if s["group_snapshot_id"] == cgsnap["id"]]
    assert sorted(s["volume_id"] for s in snaps) == sorted([member["id"], second["id"]])
    assert all(s["status"] == "available" for s in snaps)
    assert cgsnap["id"] in {r["ID"] for r in table_rows(server.cinder("cgsnapshot-list").stdout)}
    assert properties(server.cinder("cgsnapshot-show", cgsnap["id"]).stdout)["status"] == "available"

    # From the cgsnapshot and from the source CG.
    from_snap = properties(server.cinder("consisgroup-create-from-src", "--cgsnapshot", cgsnap["id"],
                                         "--name", unique("cgcopy")).stdout)
    copy = wait(server, f"/consistencygroups/{from_snap['id']}", "consistencygroup", "available")
    from_cg = properties(server.cinder("consisgroup-create-from-src", "--source-cg", cg_id).stdout)
    wait(server, f"/consistencygroups/{from_cg['id']}", "consistencygroup", "available")
    copies = server.ok("GET", f"/volumes/detail?group_id={copy['id']}")["volumes"]
    assert len(copies) == 2 and {v["status"] for v in copies} == {"available"}
    listed = {r["ID"] for r in table_rows(server.cinder("consisgroup-list").stdout)}
    assert {cg_id, copy["id"], from_cg["id"]} <= listed
    assert properties(server.cinder("consisgroup-show", cg_id).stdout)["status"] == "available"

    # Update: remove then add a member back.
    server.cinder("consisgroup-update", cg_id, "--remove-volumes", second["id"])
    wait(server, f"/consistencygroups/{cg_id}", "consistencygroup", "available")
    assert server.wait_volume(second["id"], "available")["consistencygroup_id"] is None
    server.cinder("consisgroup-update", cg_id, "--add-volumes", second["id"], "--name", unique("renamed"))
    wait(server, f"/consistencygroups/{cg_id}", "consistencygroup", "available")
    assert server.wait_volume(second["id"], "available")["consistencygroup_id"] == cg_id

    # 4xx: a member cannot be deleted alone; a CG with a cgsnapshot or members needs the right steps.
    assert "400" in error_of(server.cinder("delete", member["id"], expect=1))
    assert "Unable to delete" in error_of(server.cinder("consisgroup-delete", cg_id, expect=1))
    server.cinder("cgsnapshot-delete", cgsnap["id"])
    server.wait_gone(f"/cgsnapshots/{cgsnap['id']}")
    server.cinder("consisgroup-delete", "--force", cg_id, copy["id"], from_cg["id"])
    for ident in (cg_id, copy["id"], from_cg["id"]):
        server.wait_gone(f"/consistencygroups/{ident}")
    server.wait_gone(f"/volumes/{member['id']}")


def test_generic_group_commands(server: Server) -> None:
    t1, t2 = make_types(server)
    gtype = unique("gt")
    created = table_rows(server.cinder("group-type-create", gtype).stdout)
    assert created[0]["Name"] == gtype
    server.cinder("group-type-key", gtype, "set", "consistent_group_snapshot_enabled=<is> True")
    specs = {r["Name"]: r.get("group_specs", "") for r in table_rows(server.cinder("group-specs-list").stdout)}
    assert "consistent_group_snapshot_enabled" in specs[gtype]
    assert gtype in {r["Name"] for r in table_rows(server.cinder("group-type-list").stdout)}
    assert properties(server.cinder("group-type-show", gtype).stdout)["name"] == gtype
    server.cinder("group-type-update", "--description", "consistent", created[0]["ID"])

    name = unique("g")
    group = properties(server.cinder("group-create", "--name", name, gtype, f"{t1},{t2}").stdout)
    wait(server, f"/groups/{group['id']}", "group", "available")
    volume = properties(server.cinder("create", "--volume-type", t1, "--group-id", group["id"], "1").stdout)
    member = server.wait_volume(volume["id"], "available")
    assert member["group_id"] == group["id"]
    shown = properties(server.cinder("group-show", "--list-volume", "True", name).stdout)
    assert member["id"] in shown["volumes"] and shown["status"] == "available"
    assert name in {r["Name"] for r in table_rows(server.cinder("group-list").stdout)}

    gsnap = properties(server.cinder("group-snapshot-create", "--name", unique("gs"), name).stdout)
    detail = wait(server, f"/group_snapshots/{gsnap['id']}", "group_snapshot", "available")
    assert detail["status"] == "available" and "write_pause_ms" not in detail
    assert gsnap["id"] in {r["ID"] for r in table_rows(server.cinder("group-snapshot-list").stdout)}
    assert properties(server.cinder("group-snapshot-show", gsnap["id"]).stdout)["status"] == "available"
    copy = properties(server.cinder("group-create-from-src", "--group-snapshot", gsnap["id"],
                                    "--name", unique("gcopy")).stdout)
    wait(server, f"/groups/{copy['id']}", "group", "available")

    # reset-state of a group and a group snapshot (admin), then back.
    server.cinder("reset-state", "--type", "group", "--state", "error", group["id"])
    assert server.ok("GET", f"/groups/{group['id']}")["group"]["status"] == "error"
    server.cinder("reset-state", "--type", "group", "--state", "available", group["id"])
    server.cinder("reset-state", "--type", "group-snapshot", "--state", "error", gsnap["id"])
    assert server.ok("GET", f"/group_snapshots/{gsnap['id']}")["group_snapshot"]["status"] == "error"

    # group-update add/remove; 4xx cases.
    loose = server.wait_volume(properties(server.cinder("create", "--volume-type", t2, "1").stdout)["id"],
                               "available")
    server.cinder("group-update", group["id"], "--add-volumes", loose["id"])
    wait(server, f"/groups/{group['id']}", "group", "available")
    assert server.wait_volume(loose["id"], "available")["group_id"] == group["id"]
    assert "400" in error_of(server.cinder("group-delete", group["id"], expect=1))  # has a group snapshot
    assert "400" in error_of(server.cinder("group-type-delete", gtype, expect=1))  # in use
    refused = server.cinder("group-create", "default_cgsnapshot_type", t1, expect=1)
    assert "reserved" in error_of(refused)

    server.cinder("group-snapshot-delete", gsnap["id"])
    server.wait_gone(f"/group_snapshots/{gsnap['id']}")
    server.cinder("group-delete", "--delete-volumes", group["id"], copy["id"])
    for ident in (group["id"], copy["id"]):
        server.wait_gone(f"/groups/{ident}")
    for ident in (member["id"], loose["id"]):
        server.wait_gone(f"/volumes/{ident}")
    server.cinder("group-type-delete", gtype)


def test_openstacksdk_groups_and_consistency_groups(server: Server) -> None:
    """openstacksdk's bodies (null action bodies, create-from-src with both keys one null, names as ids)."""
    import openstack

    t1, _ = make_types(server)
    conn = openstack.connect(auth_type="admin_token", auth={"endpoint": server.endpoint, "token": "admin:admin"},
                             block_storage_endpoint_override=server.endpoint)
    try:
        bs = conn.block_storage
        gtype = bs.create_group_type(name=unique("sdkgt"),
                                     group_specs={"consistent_group_snapshot_enabled": "<is> True"})
        group = bs.create_group(group_type=gtype.name, volume_types=[t1], name=unique("sdkg"))
        wait(server, f"/groups/{group.id}", "group", "available")
        volume = server.create_volume(1, volume_type=t1, group_id=group.id)
        gsnap = bs.create_group_snapshot(group_id=group.id, name=unique("sdkgs"))
        wait(server, f"/group_snapshots/{gsnap.id}", "group_snapshot", "available")
        copy = bs.create_group_from_source(group_snapshot_id=gsnap.id, source_group_id=None, name=unique("sdkcopy"))
        wait(server, f"/groups/{copy.id}", "group", "available")
        bs.reset_group_snapshot_status(gsnap, "available")
        bs.delete_group_snapshot(gsnap)
        server.wait_gone(f"/group_snapshots/{gsnap.id}")
        for each in (group, copy):
            bs.delete_group(each, delete_volumes=True)
            server.wait_gone(f"/groups/{each.id}")
        server.wait_gone(f"/volumes/{volume['id']}")

        cg = bs.create_consistency_group(name=unique("sdkcg"), volume_types=t1)
        wait(server, f"/consistencygroups/{cg.id}", "consistencygroup", "available")
        server.create_volume(1, volume_type=t1, consistencygroup_id=cg.id)
        cgsnap = bs.create_consistency_group_snapshot(consistencygroup_id=cg.id, name=unique("sdkcgs"))
        wait(server, f"/cgsnapshots/{cgsnap.id}", "cgsnapshot", "available")
        bs.delete_consistency_group_snapshot(cgsnap)
        server.wait_gone(f"/cgsnapshots/{cgsnap.id}")
        bs.delete_consistency_group(cg, force=True)
        server.wait_gone(f"/consistencygroups/{cg.id}")
    finally:
        conn.close()
