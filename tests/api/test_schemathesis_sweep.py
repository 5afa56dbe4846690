"""Malformed-input sweep: requests generated from the service's own OpenAPI document (schemathesis),
for every operation, as an administrator and as a member of project A.

Nothing may answer 5xx, and project A's member may never receive data of project B. Beyond the
document (whose list and action endpoints take free-form query strings and bodies) the sweep also draws
list filters, microversions, action names with arbitrary arguments, and real ids of both projects for
path parameters, so requests get past the 404 of a random id. Generation is derandomized and bounded:
the same requests every run, well under a minute.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.core.result import Ok

from tests.api.test_policy_matrix import ADMIN, MEMBER, World, build_world
from tests.conftest import Cloud

EXAMPLES = 8  # per operation and caller
VERSIONS = ["3.0", "3.12", "3.31", "3.40", "3.60", "3.71", "3.71", "3.71", "3.71", "3.72", "latest", "junk"]
QUERY_KEYS = ["limit", "marker", "offset", "sort", "sort_key", "sort_dir", "with_count", "all_tenants", "name",
              "name~", "status", "metadata", "bootable", "size", "created_at", "updated_at", "availability_zone",
              "project_id", "host", "volume_id", "is_public", "detail", "usage", "force", "cascade", "binary",
              "group_id", "consumes_quota", "migration_status", "volume_type", "resource_type"]
ACTIONS = ["os-extend", "os-reset_status", "os-force_delete", "os-initialize_connection", "os-terminate_connection",
           "os-attach", "os-detach", "os-reserve", "os-unreserve", "os-begin_detaching", "os-roll_detaching",
           "os-set_bootable", "os-update_readonly_flag", "revert", "addProjectAccess", "removeProjectAccess",
           "reset_status", "delete", "create-from-src", "enable_replication", "disable_replication"]
ARG_KEYS = ["new_size", "status", "attach_status", "migration_status", "connector", "instance_uuid", "host_name",
            "mountpoint", "mode", "attachment_id", "bootable", "readonly", "snapshot_id", "project", "volume_id",
            "force", "delete-volumes", "group_snapshot_id", "source_group_id", "name", "volume_types"]
# Path parameters that name resources: filled with real ids of both projects 3 times in 4.
REAL_IDS = {"volume_id": ("volA", "volB"), "snapshot_id": ("snapA", "snapB"), "type_id": ("type", "secret"),
            "message_id": ("msgA", "msgB"), "project_id": ("projA", "projB"), "host": ("host",),
            "group_id": ("grpA", "grpB"), "cg_id": ("grpA", "grpB"), "ident": ("gsA", "gsB"), "ref": ("gtype",)}

scalars = (st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
arguments = json_values | st.dictionaries(st.sampled_from(ARG_KEYS), json_values, max_size=4)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=24) | st.sampled_from(
    ["1", "0", "true", "-1", "name:asc", "created_at:desc,id", "gt:2024-01-01T00:00:00", "{'k':'v'}", "None",
     "projB", "10000000000000000000000", "[1,2]", "volA", "volB", "snapB"]), max_size=3)


# Plausible bodies, so creations get past validation; "@volA" stands for that resource's id.
refs = st.sampled_from(["@volA", "@volB", "@snapA", "@snapB", "@type", "@secret", "secret", "public-t", "plain",
                        "@grpA", "@grpB", "@gsA", "@gsB", "gt1"]) | st.text(max_size=8)
sizes = st.integers(-1, 3) | st.sampled_from(["1", "x", 1.5, None, 2**63])


def _wrapped(key: str, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({key: st.fixed_dictionaries(required, optional=optional)})


PLAUSIBLE = {
    ("POST", "/v3/volumes"): _wrapped("volume", {"size": st.just(1) | sizes}, {
        "name": st.text(max_size=8), "volume_type": refs, "snapshot_id": refs, "source_volid": refs,
        "metadata": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
        "availability_zone": st.sampled_from(["nova", "elsewhere"]), "group_id": refs}),
    ("POST", "/v3/snapshots"): _wrapped("snapshot", {"volume_id": refs}, {
        "name": st.text(max_size=8), "force": json_values, "metadata": json_values}),
    ("POST", "/v3/types"): _wrapped("volume_type", {"name": st.text(max_size=8)}, {
        "is_public": json_values, "os-volume-type-access:is_public": json_values, "extra_specs": json_values}),
    ("POST", "/v3/groups"): _wrapped("group", {"group_type": refs, "volume_types": st.lists(refs, max_size=2)}, {
        "name": st.text(max_size=8), "availability_zone": st.sampled_from(["nova", "elsewhere"])}),
    ("POST", "/v3/group_snapshots"): _wrapped("group_snapshot", {"group_id": refs}, {"name": st.text(max_size=8)}),
    ("PUT", "/v3/groups/{group_id}"): _wrapped("group", {}, {
        "name": st.text(max_size=8), "add_volumes": refs, "remove_volumes": refs}),
}


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return ids.get(value[1:], value)
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


def _body(case: Any, draw: Any, ids: dict[str, str]) -> Any:
    if case.path.endswith("/action") or case.path.endswith("/delete"):
        named = st.dictionaries(st.sampled_from(ACTIONS), arguments | st.dictionaries(
            st.sampled_from(ARG_KEYS), refs, max_size=2), min_size=1, max_size=2)
        return _resolve(draw(st.just(case.body) | named | named.filter(lambda body: len(body) == 1)), ids)
    plausible = PLAUSIBLE.get((case.method, case.path))
    if plausible is not None and draw(st.booleans()):
        return _resolve(draw(plausible), ids)
    return case.body


def _sweep(cloud: Cloud, world: World, operation: Any, token: str, failures: list[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), data=st.data())
    def run(case: Any, data: Any) -> None:
        path_parameters = dict(case.path_parameters or {})
        for name, keys in REAL_IDS.items():
            if name in path_parameters and data.draw(st.integers(0, 3)):  # real ids 3 times in 4
                path_parameters[name] = world.ids.get(key := data.draw(st.sampled_from(keys)), key)
        path = case.path
        for name, value in path_parameters.items():
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        query = {**(case.query or {}), **(data.draw(queries) if case.method == "GET" else {})}
        for key, value in list(query.items()):
            if value in world.ids:  # "volA" → its id: markers and filters of real resources
                query[key] = world.ids[value]
        body = _body(case, data.draw, world.ids)
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": f"volume {data.draw(st.sampled_from(VERSIONS))}"}
        kwargs: dict[str, Any] = {"params": query, "headers": headers}
        if not isinstance(body, NotSet):
            kwargs["json"] = body
        sent = f"{case.method} {path} {json.dumps(query)} {json.dumps(body) if not isinstance(body, NotSet) else ''}"
        try:
            response = cloud.client.request(case.method, path, **kwargs)
        except Exception as error:  # the test client re-raises what became a 500
            failures.append(f"500 ({type(error).__name__}: {error}) as {token}: {sent}")
            return
        if response.status_code >= 500:
            failures.append(f"{response.status_code} as {token}: {sent} -> {response.text[:300]}")
        if token != ADMIN:
            leaked = {s for s in world.secrets_of_b if s in response.text and s not in sent}
            if leaked:
                failures.append(f"leak of {leaked} to {token}: {sent} -> {response.text[:300]}")

    run()


def test_generated_requests_never_5xx_nor_leak(cloud: Cloud) -> None:
    failures: list[str] = []
    with cloud.client:
        world = build_world(cloud, groups=True)
        schema = schemathesis.openapi.from_asgi("/openapi.json", cloud.running.app)
        results = list(schema.get_all_operations())
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert len(operations) == len(results) > 40, [r for r in results if not isinstance(r, Ok)]
        for operation in operations:
            for token in (MEMBER, ADMIN):  # the member first: an admin's deletes would thin the data out
                _sweep(cloud, world, operation, token, failures)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:25])
