"""Every response against Tempest 47.0.0's own response schemas (the installed `tempest` package).

Tempest validates each volume API answer with jsonschema (`additionalProperties: false`, exact `required`
lists), picking the schema as its service clients do: the client's `schema_versions_info` by microversion,
else the one schema module the client imports. Each row is one tempest client call: it is made as an
administrator and as a member of the project, at each microversion Tempest sends it with, and checked as
`RestClient.validate_response` checks it (status code, body, or no body), plus the microversion header
Tempest's volume clients require in every answer.

Not rows: what cinderblock does not serve (os-retype, os-force_detach, os-migrate_volume, image metadata,
os-update_snapshot_status, os-unmanage, failover_host needs a replicated backend) and families not built
(QoS, hosts, quota classes, extensions, transfers, backups, encryption types, manage, attachments).
Tempest has no schema for os-availability-zone. Snapshot calls are checked at 3.0..3.13 only: Tempest
checks all of them against its 3.0 schema, which lacks Cinder's `group_snapshot_id` (3.14), `user_id`
(3.41) and `consumes_quota` (3.65).
"""
from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient
from tempest.lib.common import api_version_request, api_version_utils, rest_client
from tempest.lib.services.volume.v3 import (
    capabilities_client, group_snapshots_client, group_types_client, groups_client, limits_client,
    messages_client, quotas_client, scheduler_stats_client, services_client, snapshots_client, types_client,
    versions_client, volumes_client)

from cinderblock.config.settings import build_config, load_settings
from cinderblock.volume.loading import driver_options
from cinderblock.runtime.embedded import start_embedded
from cinderblock.runtime.wiring import build_core
from tests.api.helpers import message
from tests.conftest import Cloud

PROJECT = "p1"
ADMIN, MEMBER = f"admin:{PROJECT}", f"u:{PROJECT}:member"
ROLES = {"admin": ADMIN, "member": MEMBER}
BOTH, ADMIN_ONLY = ("admin", "member"), ("admin",)
CONNECTOR = {"host": "node1", "initiator": "iqn.1993-08.org.debian:01:abc"}
SERVER = "6b1e0f5c-0000-4000-8000-00000000beef"
# Keys Cinder shows administrators only (Tempest's schemas allow them, so they are checked apart).
ADMIN_KEYS = {"migration_status", "os-vol-host-attr:host", "os-vol-mig-status-attr:migstat",
              "os-vol-mig-status-attr:name_id", "provider_id", "cluster_name", "qos_specs_id"}

# Microversions Tempest sends: none (3.0) for most tests, a test class's minimum otherwise (groups 3.13,
# 3.14, 3.20; extend 3.42; retype 3.50), and every step that has its own volume schema (3.61 … 3.69).
VOLUME_VERSIONS = (None, "3.13", "3.42", "3.50", "3.61", "3.63", "3.64", "3.65", "3.69", "3.71")
BASE = (None, "3.71")
# Tempest's 3.61+ volume schema modules lack these three: its client fails on them past 3.60.
OLD_ONLY = (None, "3.60")
SNAPSHOT_VERSIONS = (None, "3.13")


@dataclass(frozen=True)
class Row:
    """One tempest client call. Path and body name resources as `{vol}` (shared) or `{new_vol}` (made for
    this call alone: see World.make); `setup` and `cleanup` are admin requests around the call."""

    client: type
    schema: str  # attribute of the client's schema module, e.g. "create_volume"
    method: str
    path: str
    body: Any = None
    versions: tuple[str | None, ...] = BASE
    roles: tuple[str, ...] = BOTH
    setup: tuple[tuple[str, str, Any], ...] = ()
    cleanup: tuple[tuple[str, str, Any], ...] = ()
    name: str = ""
    status: int | None = None  # replaces the schema's status code (see update_volume)

    @property
    def label(self) -> str:
        return self.name or self.schema


VOL, SNAP, TYPE = "/v3/volumes/{vol}", "/v3/snapshots/{snap}", "/v3/types/{type}"
NEW_VOL, NEW_SNAP = "/v3/volumes/{new_vol}", "/v3/snapshots/{new_snap}"
G11, G13, G14 = ("3.11",), ("3.13", "3.14", "3.20", "3.38"), ("3.14", "3.19")
V = volumes_client.VolumesClient
S = snapshots_client.SnapshotsClient
T = types_client.TypesClient
GT = group_types_client.GroupTypesClient
G = groups_client.GroupsClient
GS = group_snapshots_client.GroupSnapshotsClient
FREEZE = ("PUT", "/v3/os-services/freeze", {"host": "{host}"})
THAW = ("PUT", "/v3/os-services/thaw", {"host": "{host}"})
ENABLE = ("PUT", "/v3/os-services/enable", {"host": "{host}", "binary": "cinder-volume"})

ROWS = [
    # volumes
    Row(V, "create_volume", "POST", "/v3/volumes", {"volume": {"size": 1, "name": "v"}}, VOLUME_VERSIONS),
    Row(V, "show_volume", "GET", VOL, versions=VOLUME_VERSIONS),
    Row(V, "list_volumes_no_detail", "GET", "/v3/volumes", versions=VOLUME_VERSIONS),
    Row(V, "list_volumes_with_detail", "GET", "/v3/volumes/detail", versions=VOLUME_VERSIONS),
    Row(V, "update_volume", "PUT", VOL, {"volume": {"name": "renamed"}}, VOLUME_VERSIONS[:4] + ("3.60",)),
    # Tempest's 3.61+ modules copy update_volume from 3.0 without the keys they add to create_volume,
    # though Cinder renders both with one view; Tempest's own rule (update = create with 200) applies.
    Row(V, "create_volume", "PUT", VOL, {"volume": {"name": "renamed"}}, VOLUME_VERSIONS[4:], status=200,
        name="update_volume (3.61+)"),
    Row(V, "delete_volume", "DELETE", NEW_VOL),
    Row(V, "show_volume_summary", "GET", "/v3/volumes/summary", versions=("3.12", "3.36")),
    Row(V, "create_volume_metadata", "POST", VOL + "/metadata", {"metadata": {"a": "b"}}),
    Row(V, "show_volume_metadata", "GET", VOL + "/metadata"),
    Row(V, "update_volume_metadata", "PUT", VOL + "/metadata", {"metadata": {"k": "v"}}),
    Row(V, "show_volume_metadata_item", "GET", VOL + "/metadata/k", versions=OLD_ONLY),
    Row(V, "update_volume_metadata_item", "PUT", VOL + "/metadata/k", {"meta": {"k": "w"}}),
    Row(V, "delete_volume_metadata_item", "DELETE", NEW_VOL + "/metadata/k", versions=OLD_ONLY),
    # volume actions
    Row(V, "attach_volume", "POST", NEW_VOL + "/action",
        {"os-attach": {"instance_uuid": SERVER, "mountpoint": "/dev/vdb", "mode": "rw"}}),
    Row(V, "detach_volume", "POST", NEW_VOL + "/action", {"os-detach": {}},
        setup=(("POST", NEW_VOL + "/action", {"os-attach": {"instance_uuid": SERVER, "mountpoint": "/dev/vdb"}}),)),
    Row(V, "set_bootable_volume", "POST", NEW_VOL + "/action", {"os-set_bootable": {"bootable": True}}),
    Row(V, "terminate_connection", "POST", NEW_VOL + "/action", {"os-terminate_connection": {"connector": CONNECTOR}},
        OLD_ONLY),
    Row(V, "reserve_volume", "POST", NEW_VOL + "/action", {"os-reserve": {}}),
    Row(V, "unreserve_volume", "POST", NEW_VOL + "/action", {"os-unreserve": {}},
        setup=(("POST", NEW_VOL + "/action", {"os-reserve": {}}),)),
    Row(V, "extend_volume", "POST", NEW_VOL + "/action", {"os-extend": {"new_size": 2}}, (None, "3.42")),
    Row(V, "reset_volume_status", "POST", NEW_VOL + "/action", {"os-reset_status": {"status": "error"}},
        roles=ADMIN_ONLY),
    Row(V, "update_volume_readonly", "POST", NEW_VOL + "/action", {"os-update_readonly_flag": {"readonly": True}}),
    Row(V, "force_delete_volume", "POST", NEW_VOL + "/action", {"os-force_delete": {}}, roles=ADMIN_ONLY),
    # snapshots
    Row(S, "create_snapshot", "POST", "/v3/snapshots", {"snapshot": {"volume_id": "{new_vol}", "name": "s"}},
        SNAPSHOT_VERSIONS),
    Row(S, "show_snapshot", "GET", SNAP, versions=SNAPSHOT_VERSIONS),
    Row(S, "list_snapshots_no_detail", "GET", "/v3/snapshots", versions=SNAPSHOT_VERSIONS),
    Row(S, "list_snapshots_with_detail", "GET", "/v3/snapshots/detail", versions=SNAPSHOT_VERSIONS),
    Row(S, "update_snapshot", "PUT", SNAP, {"snapshot": {"name": "renamed"}}, SNAPSHOT_VERSIONS),
    Row(S, "delete_snapshot", "DELETE", NEW_SNAP, versions=SNAPSHOT_VERSIONS),
    Row(S, "reset_snapshot_status", "POST", NEW_SNAP + "/action", {"os-reset_status": {"status": "error"}},
        SNAPSHOT_VERSIONS, ADMIN_ONLY),
    Row(S, "force_delete_snapshot", "POST", NEW_SNAP + "/action", {"os-force_delete": {}}, SNAPSHOT_VERSIONS,
        ADMIN_ONLY),
    Row(S, "create_snapshot_metadata", "POST", SNAP + "/metadata", {"metadata": {"a": "b"}}, SNAPSHOT_VERSIONS),
    Row(S, "show_snapshot_metadata", "GET", SNAP + "/metadata", versions=SNAPSHOT_VERSIONS),
    Row(S, "update_snapshot_metadata", "PUT", SNAP + "/metadata", {"metadata": {"k": "v"}}, SNAPSHOT_VERSIONS),
    Row(S, "show_snapshot_metadata_item", "GET", SNAP + "/metadata/k", versions=SNAPSHOT_VERSIONS),
    Row(S, "update_snapshot_metadata_item", "PUT", SNAP + "/metadata/k", {"meta": {"k": "w"}}, SNAPSHOT_VERSIONS),
    Row(S, "delete_snapshot_metadata_item", "DELETE", NEW_SNAP + "/metadata/k", versions=SNAPSHOT_VERSIONS),
    # volume types, extra specs, access
    Row(T, "list_volume_types", "GET", "/v3/types"),
    Row(T, "list_volume_types", "GET", "/v3/types?is_public=None", name="list_volume_types (all)"),
    Row(T, "show_volume_type", "GET", TYPE),
    Row(T, "show_volume_type", "GET", "/v3/types/default", name="show_default_volume_type"),
    Row(T, "create_volume_type", "POST", "/v3/types",
        {"volume_type": {"name": "t-{uniq}", "description": "d", "extra_specs": {"a": "b"}}}, roles=ADMIN_ONLY),
    Row(T, "create_volume_type", "POST", "/v3/types",
        {"volume_type": {"name": "t-{uniq}", "os-volume-type-access:is_public": False}}, roles=ADMIN_ONLY,
        name="create_volume_type (private)"),
    Row(T, "update_volume_types", "PUT", TYPE, {"volume_type": {"description": "changed"}}, roles=ADMIN_ONLY),
    Row(T, "delete_volume_type", "DELETE", "/v3/types/{new_type}", roles=ADMIN_ONLY),
    Row(T, "list_volume_types_extra_specs", "GET", TYPE + "/extra_specs", roles=ADMIN_ONLY),
    Row(T, "show_volume_types_extra_specs", "GET", TYPE + "/extra_specs/k", roles=ADMIN_ONLY),
    Row(T, "create_volume_types_extra_specs", "POST", TYPE + "/extra_specs", {"extra_specs": {"a": "b"}},
        roles=ADMIN_ONLY),
    Row(T, "update_volume_type_extra_specs", "PUT", TYPE + "/extra_specs/k", {"k": "w"}, roles=ADMIN_ONLY),
    Row(T, "delete_volume_types_extra_specs", "DELETE", "/v3/types/{new_type}/extra_specs/k", roles=ADMIN_ONLY),
    Row(T, "add_type_access", "POST", "/v3/types/{new_type}/action", {"addProjectAccess": {"project": "p2"}},
        roles=ADMIN_ONLY),
    Row(T, "remove_type_access", "POST", "/v3/types/{new_type}/action",
        {"removeProjectAccess": {"project": PROJECT}}, roles=ADMIN_ONLY),
    Row(T, "list_type_access", "GET", "/v3/types/{new_type}/os-volume-type-access", roles=ADMIN_ONLY),
    # group types (3.11) and their specs
    Row(GT, "create_group_type", "POST", "/v3/group_types", {"group_type": {"name": "gt-{uniq}"}}, G11, ADMIN_ONLY),
    Row(GT, "list_group_types", "GET", "/v3/group_types", versions=G11),
    Row(GT, "show_group_type", "GET", "/v3/group_types/{gtype}", versions=G11),
    Row(GT, "update_group_type", "PUT", "/v3/group_types/{new_gtype}", {"group_type": {"description": "d"}}, G11,
        ADMIN_ONLY),
    Row(GT, "delete_group_type", "DELETE", "/v3/group_types/{new_gtype}", versions=G11, roles=ADMIN_ONLY),
    Row(GT, "create_or_update_group_type_specs", "POST", "/v3/group_types/{new_gtype}/group_specs",
        {"group_specs": {"a": "b"}}, G11, ADMIN_ONLY),
    Row(GT, "list_group_type_specs", "GET", "/v3/group_types/{gtype}/group_specs", versions=G11, roles=ADMIN_ONLY),
    Row(GT, "show_group_type_specs_item", "GET", "/v3/group_types/{new_gtype}/group_specs/k", versions=G11,
        roles=ADMIN_ONLY),
    Row(GT, "update_group_type_specs_item", "PUT", "/v3/group_types/{new_gtype}/group_specs/k", {"k": "w"}, G11,
        ADMIN_ONLY),
    Row(GT, "delete_group_type_specs_item", "DELETE", "/v3/group_types/{new_gtype}/group_specs/k", versions=G11,
        roles=ADMIN_ONLY),
    # groups (3.13; from source 3.14; reset_status 3.20)
    Row(G, "create_group", "POST", "/v3/groups",
        {"group": {"name": "g", "group_type": "{gtype}", "volume_types": ["{plain}"]}}, G13),
    Row(G, "show_group", "GET", "/v3/groups/{group}", versions=G13),
    Row(G, "show_group", "GET", "/v3/groups/{group}?list_volume=true", versions=G13, name="show_group (volumes)"),
    Row(G, "list_groups_no_detail", "GET", "/v3/groups", versions=G13),
    Row(G, "list_groups_with_detail", "GET", "/v3/groups/detail", versions=G13),
    Row(G, "update_group", "PUT", "/v3/groups/{new_group}", {"group": {"name": "renamed"}}, G13),
    Row(G, "delete_group", "POST", "/v3/groups/{new_group}/action", {"delete": {"delete-volumes": True}}, G13),
    Row(G, "create_group_from_source", "POST", "/v3/groups/action",
        {"create-from-src": {"name": "copy", "group_snapshot_id": "{gsnap}"}}, ("3.14", "3.20")),
    Row(G, "reset_group_status", "POST", "/v3/groups/{new_group}/action", {"reset_status": {"status": "error"}},
        ("3.20",), ADMIN_ONLY),
    # group snapshots (3.14; reset_status 3.19)
    Row(GS, "create_group_snapshot", "POST", "/v3/group_snapshots",
        {"group_snapshot": {"name": "gs", "group_id": "{new_group}"}}, G14),
    Row(GS, "show_group_snapshot", "GET", "/v3/group_snapshots/{gsnap}", versions=G14),
    Row(GS, "list_group_snapshots_no_detail", "GET", "/v3/group_snapshots", versions=G14),
    Row(GS, "list_group_snapshots_with_detail", "GET", "/v3/group_snapshots/detail", versions=G14),
    Row(GS, "delete_group_snapshot", "DELETE", "/v3/group_snapshots/{new_gsnap}", versions=G14),
    Row(GS, "reset_group_snapshot_status", "POST", "/v3/group_snapshots/{new_gsnap}/action",
        {"reset_status": {"status": "error"}}, ("3.19",), ADMIN_ONLY),
    # user messages (3.3)
    Row(messages_client.MessagesClient, "list_messages", "GET", "/v3/messages", versions=("3.3",)),
    Row(messages_client.MessagesClient, "show_message", "GET", "/v3/messages/{new_msg}", versions=("3.3",)),
    Row(messages_client.MessagesClient, "delete_message", "DELETE", "/v3/messages/{new_msg}", versions=("3.3",)),
    # services (the 3.7 schema adds cluster)
    Row(services_client.ServicesClient, "list_services", "GET", "/v3/os-services", versions=(None, "3.7", "3.71"),
        roles=ADMIN_ONLY),
    Row(services_client.ServicesClient, "enable_service", "PUT", "/v3/os-services/enable",
        {"host": "{host}", "binary": "cinder-volume"}, roles=ADMIN_ONLY),
    Row(services_client.ServicesClient, "disable_service", "PUT", "/v3/os-services/disable",
        {"host": "{host}", "binary": "cinder-volume"}, roles=ADMIN_ONLY, cleanup=(ENABLE,)),
    Row(services_client.ServicesClient, "disable_log_reason", "PUT", "/v3/os-services/disable-log-reason",
        {"host": "{host}", "binary": "cinder-volume", "disabled_reason": "maintenance"}, roles=ADMIN_ONLY,
        cleanup=(ENABLE,)),
    Row(services_client.ServicesClient, "freeze_host", "PUT", *FREEZE[1:], roles=ADMIN_ONLY, cleanup=(THAW,)),
    Row(services_client.ServicesClient, "thaw_host", "PUT", *THAW[1:], roles=ADMIN_ONLY, setup=(FREEZE,)),
    # quotas and limits
    Row(quotas_client.QuotasClient, "show_quota_set", "GET", f"/v3/os-quota-sets/{PROJECT}"),
    Row(quotas_client.QuotasClient, "show_quota_set_usage", "GET", f"/v3/os-quota-sets/{PROJECT}?usage=true"),
    Row(quotas_client.QuotasClient, "show_quota_set", "GET", f"/v3/os-quota-sets/{PROJECT}/defaults",
        name="show_default_quota_set"),
    Row(quotas_client.QuotasClient, "update_quota_set", "PUT", f"/v3/os-quota-sets/{PROJECT}",
        {"quota_set": {"backups": 20}}, roles=ADMIN_ONLY),
    Row(quotas_client.QuotasClient, "delete_quota_set", "DELETE", "/v3/os-quota-sets/p3", roles=ADMIN_ONLY),
    Row(limits_client.LimitsClient, "show_limits", "GET", "/v3/limits"),
    # pools, capabilities, versions
    Row(scheduler_stats_client.SchedulerStatsClient, "get_pools_no_detail", "GET", "/v3/scheduler-stats/get_pools",
        roles=ADMIN_ONLY),
    Row(scheduler_stats_client.SchedulerStatsClient, "get_pools_with_detail", "GET",
        "/v3/scheduler-stats/get_pools?detail=True", roles=ADMIN_ONLY),
    Row(capabilities_client.CapabilitiesClient, "show_backend_capabilities", "GET", "/v3/capabilities/{host}",
        roles=ADMIN_ONLY),
    Row(versions_client.VersionsClient, "list_versions", "GET", "/", versions=(None,)),
    Row(versions_client.VersionsClient, "volume_api_version_details", "GET", "/v3/", versions=(None, "3.71")),
]


def schema_for(row: Row, version: str | None) -> dict[str, Any]:
    """The schema Tempest's client validates this call with at this microversion (BaseClient.get_schema)."""
    infos = getattr(row.client, "schema_versions_info", None)
    if infos is None:
        return dict(getattr(sys.modules[row.client.__module__].schema, row.schema))
    wanted = api_version_request.APIVersionRequest(version)
    for info in infos:
        low, high = (api_version_request.APIVersionRequest(info[k]) for k in ("min", "max"))
        if (info["min"] is None) if wanted.is_null() else wanted.matches(low, high):
            schema = dict(getattr(info["schema"], row.schema))
            return schema if row.status is None else {**schema, "status_code": [row.status]}
    raise LookupError(f"no schema for {row.label} at {version}")


class World:
    """One cloud for the whole table: shared resources of project p1, and fresh ones per call."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.counter = itertools.count()
        self.ids: dict[str, str] = {}
        self.ok("PUT", f"/v3/os-quota-sets/{PROJECT}", {"quota_set": {
            "volumes": -1, "snapshots": -1, "gigabytes": -1, "groups": -1}})  # hundreds of calls
        # `plain` for volumes and groups; `specced` for the type calls (a spec the file backend cannot meet).
        self.ids["plain"] = self.ok("POST", "/v3/types", {"volume_type": {"name": "plain"}})["volume_type"]["id"]
        specced = self.ok("POST", "/v3/types", {"volume_type": {"name": "specced", "extra_specs": {"k": "v"}}})
        self.ids["type"] = specced["volume_type"]["id"]
        specs = {"consistent_group_snapshot_enabled": "<is> True"}
        gtype = self.ok("POST", "/v3/group_types", {"group_type": {"name": "gt", "group_specs": specs}}, "3.11")
        self.ids["gtype"] = gtype["group_type"]["id"]
        services = self.ok("GET", "/v3/os-services?binary=cinder-volume")
        self.ids["host"] = services["services"][0]["host"]
        self.ids["vol"] = self.make("new_vol")
        self.ids["snap"] = self.make("new_snap")
        self.ids["group"] = self.make("new_group")
        self.ids["gsnap"] = self.make("new_gsnap")
        # An attached volume and a reserved one, so lists show attachments and every status shape.
        self.act(self.make("new_vol"), {"os-attach": {"instance_uuid": SERVER, "mountpoint": "/dev/vdc"}})
        self.act(self.make("new_vol"), {"os-reserve": {}})
        message(cloud, PROJECT)

    def ok(self, method: str, path: str, body: Any = None, version: str = "3.71") -> Any:
        response = self.cloud.client.request(method, path, json=body, headers=_headers(ADMIN, version))
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def act(self, volume_id: str, body: dict[str, Any]) -> None:
        self.ok("POST", f"/v3/volumes/{volume_id}/action", body)

    def wait(self, path: str, key: str) -> str:
        return str(self.cloud._wait(path, key, ("available",), 10.0)["id"])

    def make(self, kind: str) -> str:
        """A new resource of `kind` (new_vol, new_snap, new_type, new_gtype, new_group, new_gsnap, new_msg)."""
        n = next(self.counter)
        if kind == "new_vol":
            made = self.ok("POST", "/v3/volumes", {"volume": {"size": 1, "volume_type": "plain",
                                                              "metadata": {"k": "v"}}})
            return self.wait(f"/v3/volumes/{made['volume']['id']}", "volume")
        if kind == "new_snap":
            made = self.ok("POST", "/v3/snapshots", {"snapshot": {"volume_id": self.make("new_vol"),
                                                                  "metadata": {"k": "v"}}})
            return self.wait(f"/v3/snapshots/{made['snapshot']['id']}", "snapshot")
        if kind == "new_type":
            made = self.ok("POST", "/v3/types", {"volume_type": {
                "name": f"type-{n}", "extra_specs": {"k": "v"}, "os-volume-type-access:is_public": False}})
            self.ok("POST", f"/v3/types/{made['volume_type']['id']}/action",
                    {"addProjectAccess": {"project": PROJECT}})
            return str(made["volume_type"]["id"])
        if kind == "new_gtype":
            made = self.ok("POST", "/v3/group_types", {"group_type": {"name": f"gt-{n}", "group_specs": {"k": "v"}}})
            return str(made["group_type"]["id"])
        if kind == "new_group":
            made = self.ok("POST", "/v3/groups", {"group": {"name": f"g-{n}", "group_type": self.ids["gtype"],
                                                            "volume_types": [self.ids["plain"]]}})
            group_id = self.wait(f"/v3/groups/{made['group']['id']}", "group")
            member = self.ok("POST", "/v3/volumes", {"volume": {"size": 1, "volume_type": "plain",
                                                                "group_id": group_id}})
            self.wait(f"/v3/volumes/{member['volume']['id']}", "volume")
            return group_id
        if kind == "new_gsnap":
            made = self.ok("POST", "/v3/group_snapshots", {"group_snapshot": {"name": f"gs-{n}",
                                                                          "group_id": self.make("new_group")}})
            return self.wait(f"/v3/group_snapshots/{made['group_snapshot']['id']}", "group_snapshot")
        if kind == "new_msg":
            return message(self.cloud, PROJECT)
        raise KeyError(kind)

    def fill(self, text: str) -> str:
        """Placeholders → ids: one fresh resource per distinct `{new_*}` name in this call."""
        fresh: dict[str, str] = {}
        for kind in sorted(set(re.findall(r"\{(new_\w+)\}", text))):
            fresh[kind] = self.make(kind)
        values = {**self.ids, **fresh, "uniq": str(next(self.counter))}
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], text)


def _headers(token: str, version: str | None) -> dict[str, str]:
    headers = {"X-Auth-Token": token}
    if version is not None:
        headers["OpenStack-API-Version"] = f"volume {version}"
    return headers


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state = tmp_path_factory.mktemp("tempest-schemas")
    config = state / "cinder.conf"
    config.write_text("")
    settings = load_settings(build_config(config_files=[str(config)]), driver_options, state_path=str(state / "state"))
    running = start_embedded(build_core(settings))
    try:
        with TestClient(running.app, base_url="http://cinderblock.test") as client:
            yield World(Cloud(running, client))
    finally:
        running.stop()


CASES = [pytest.param(row, version, role, id=f"{row.label}-{version or 'none'}-{role}")
         for row in ROWS for version in row.versions for role in row.roles]


@pytest.mark.parametrize(("row", "version", "role"), CASES)
def test_response_matches_tempest_schema(world: World, row: Row, version: str | None, role: str) -> None:
    shared = json.dumps([row.path, row.body, row.setup, row.cleanup])
    path, body, setup, cleanup = json.loads(world.fill(shared))
    for method, step_path, step_body in setup:
        world.ok(method, step_path, step_body)
    try:
        response = world.cloud.client.request(row.method, path, json=body, headers=_headers(ROLES[role], version))
    finally:
        for method, step_path, step_body in cleanup:
            world.ok(method, step_path, step_body)
    assert response.status_code < 400, f"{row.method} {path}: {response.status_code} {response.text}"
    schema = schema_for(row, version)
    # Tempest decodes JSON only where the schema has a body; elsewhere any content at all is an error.
    content = response.json() if "response_body" in schema else response.content
    rest_client.RestClient.validate_response(schema, SimpleNamespace(status=response.status_code), content)
    if role == "member":
        assert not ADMIN_KEYS & _keys(content), f"a member sees {ADMIN_KEYS & _keys(content)}"
    if version is not None and row.client is not versions_client.VersionsClient:
        api_version_utils.assert_version_header_matches_request(
            "OpenStack-API-Version", f"volume {version}", {k.lower(): v for k, v in response.headers.items()})


def _keys(body: Any) -> set[str]:
    """Every object key anywhere in a decoded JSON body."""
    if isinstance(body, dict):
        return set(body).union(*(_keys(v) for v in body.values()))
    if isinstance(body, list):
        return set().union(*(_keys(v) for v in body))
    return set()
