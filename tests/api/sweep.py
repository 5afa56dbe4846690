"""The malformed-input sweep, shared by the CI test (tests/api/test_schemathesis_sweep.py, small and
derandomized, SQLite) and the benchmark (bench/hostile_sweep.py, 20,000+ requests per database).

Requests are generated from the service's own OpenAPI document (schemathesis) for every operation and
caller. Beyond the document (whose list and action endpoints take free-form query strings and bodies)
the sweep draws list filters, microversions, action names with arbitrary arguments, real ids of two
projects for path parameters (so requests get past the 404 of a random id), and hostile text: lone
UTF-16 surrogates, NUL and other control characters, 64 KiB strings, deeply nested JSON and raw bodies
that are not JSON at all. Bodies and query strings are encoded here, byte for byte (an HTTP client
would refuse a lone surrogate), so the service sees exactly what a hostile client could send.

A request fails the sweep when it is answered 5xx, or when a project A caller receives data of B.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet

from tests.api.test_policy_matrix import ADMIN, MEMBER, READER, World

ROLES = {"reader": READER, "member": MEMBER, "admin": ADMIN}  # this order: an admin's deletes thin data out
VERSIONS = ["3.0", "3.12", "3.31", "3.40", "3.60", "3.71", "3.71", "3.71", "3.71", "3.72", "latest", "junk"]
QUERY_KEYS = ["limit", "marker", "offset", "sort", "sort_key", "sort_dir", "with_count", "all_tenants", "name",
              "name~", "status", "metadata", "bootable", "size", "created_at", "updated_at", "availability_zone",
              "project_id", "host", "volume_id", "is_public", "detail", "usage", "force", "cascade", "binary",
              "group_id", "consumes_quota", "migration_status", "volume_type", "resource_type", "id",
              "group_type", "list_volume"]
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

# --- hostile text ---------------------------------------------------------------------------------
NASTY = ["\ud800", "\udfff", "a\ud83d", "\x00", "a\x00b", "\x01\x1f\x7f", "\u2028\u2029", "\ufeff", "😀", "Ａ",
         "'", '"', "\\", "%00", "%", "{{}}", "{[1]:2}", "{[]}", "{'k': 'v'}", "[1, 2]", "(1,)", "True", "None",
         "-" * 5000 + "1", "[" * 3000, "{" * 3000, " ", "", "../..", "a" * 255, "a" * 256, "9" * 400]
big_text = st.builds(lambda chunk, n: chunk * n, st.sampled_from(["a", "\x00", "\ud800", "é", "😀", "{", "-", "["]),
                     st.sampled_from([255, 256, 4096, 65536]))
hostile_text = (st.text(max_size=12) | st.text(st.characters(categories=["Cs", "Cc", "Zs", "So", "Co"]), max_size=8)
                | st.sampled_from(NASTY) | big_text)
scalars = (st.none() | st.booleans() | st.integers(-2, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | hostile_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(hostile_text, inner, max_size=3), max_leaves=6)
arguments = json_values | st.dictionaries(st.sampled_from(ARG_KEYS), json_values, max_size=4)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), hostile_text | st.sampled_from(
    ["1", "0", "true", "-1", "name:asc", "created_at:desc,id", "gt:2024-01-01T00:00:00", "{'k':'v'}", "None",
     "projB", "10000000000000000000000", "[1,2]", "volA", "volB", "snapB"]), max_size=3)


def _nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


# Bodies no JSON encoder would write: deep nesting, 10 MB, bytes that are not UTF-8, UTF-16, NUL bytes.
RAW_BODIES = [_nested(100_000, b"[", b"]"), _nested(1_000, b"[", b"]"), _nested(50, b"[", b"]"),
              b'{"a":' * 5_000 + b"1" + b"}" * 5_000, b'{"volume": ' * 900 + b"{}" + b"}" * 900,
              b"[" * 10_000_000, b'{"volume": {"size": 1, "name": "' + b"x" * 200_000 + b'"}}',
              b'{"volume": {"size": 1, "name": "\xed\xa0\x80"}}', b'{"volume": {"size": 1, "name": "\xff\xfe"}}',
              '{"volume": {"size": 1, "name": "ü"}}'.encode("utf-16"), b'{"volume": {"size": 1}}\x00',
              b'{"metadata": {"\\u0000": "\\ud800"}}', b"\x00", b"", b"null", b"1e999999", b"-" * 100_000 + b"1"]
raw_bodies = st.sampled_from(RAW_BODIES)

# Plausible bodies, so creations get past validation; "@volA" stands for that resource's id.
refs = st.sampled_from(["@volA", "@volB", "@snapA", "@snapB", "@type", "@secret", "secret", "public-t", "plain",
                        "@grpA", "@grpB", "@gsA", "@gsB", "gt1"]) | hostile_text
sizes = st.integers(-1, 3) | st.sampled_from(["1", "x", 1.5, None, 2**63])
metadata = st.dictionaries(hostile_text, hostile_text, max_size=3) | st.just({f"k{i}": "v" for i in range(200)})


def _wrapped(key: str, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({key: st.fixed_dictionaries(required, optional=optional)})


PLAUSIBLE = {
    ("POST", "/v3/volumes"): _wrapped("volume", {"size": st.just(1) | sizes}, {
        "name": hostile_text, "description": hostile_text, "volume_type": refs, "snapshot_id": refs,
        "source_volid": refs, "metadata": metadata, "availability_zone": st.sampled_from(["nova", "elsewhere"])
        | hostile_text, "group_id": refs}),
    ("PUT", "/v3/volumes/{volume_id}"): _wrapped("volume", {}, {"name": hostile_text, "metadata": metadata}),
    ("POST", "/v3/volumes/{volume_id}/metadata"): st.fixed_dictionaries({"metadata": metadata}),
    ("PUT", "/v3/volumes/{volume_id}/metadata"): st.fixed_dictionaries({"metadata": metadata}),
    ("POST", "/v3/snapshots"): _wrapped("snapshot", {"volume_id": refs}, {
        "name": hostile_text, "force": json_values, "metadata": metadata | json_values}),
    ("POST", "/v3/snapshots/{snapshot_id}/metadata"): st.fixed_dictionaries({"metadata": metadata}),
    ("POST", "/v3/types"): _wrapped("volume_type", {"name": hostile_text}, {
        "is_public": json_values, "os-volume-type-access:is_public": json_values,
        "extra_specs": st.dictionaries(hostile_text, hostile_text, max_size=3) | json_values}),
    ("POST", "/v3/types/{type_id}/extra_specs"): st.fixed_dictionaries({
        "extra_specs": st.dictionaries(hostile_text, hostile_text, max_size=3)}),
    ("POST", "/v3/group_types"): _wrapped("group_type", {"name": hostile_text}, {
        "group_specs": st.dictionaries(hostile_text, hostile_text, max_size=3)}),
    ("POST", "/v3/groups"): _wrapped("group", {"group_type": refs, "volume_types": st.lists(refs, max_size=2)}, {
        "name": hostile_text, "availability_zone": st.sampled_from(["nova", "elsewhere"]) | hostile_text}),
    ("POST", "/v3/group_snapshots"): _wrapped("group_snapshot", {"group_id": refs}, {"name": hostile_text}),
    ("PUT", "/v3/groups/{group_id}"): _wrapped("group", {}, {
        "name": hostile_text, "add_volumes": refs, "remove_volumes": refs}),
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
    """A JSON value, raw bytes, or NotSet (no body)."""
    if case.method in ("POST", "PUT") and draw(st.integers(0, 9)) == 0:
        return draw(raw_bodies)
    if case.path.endswith("/action") or case.path.endswith("/delete"):
        named = st.dictionaries(st.sampled_from(ACTIONS), arguments | st.dictionaries(
            st.sampled_from(ARG_KEYS), refs, max_size=2), min_size=1, max_size=2)
        return _resolve(draw(st.just(case.body) | named | named.filter(lambda body: len(body) == 1)), ids)
    plausible = PLAUSIBLE.get((case.method, case.path))
    if plausible is not None and draw(st.booleans()):
        return _resolve(draw(plausible), ids)
    return case.body


def _encode(text: str) -> str:
    """Percent-encoding of any text, lone surrogates included (as their UTF-8-like bytes)."""
    return quote(text, safe="", encoding="utf-8", errors="surrogatepass")


@dataclass
class Tally:
    """Requests and 5xx answers per role; failure descriptions (5xx and leaks), the first ones kept."""

    requests: dict[str, int] = field(default_factory=dict)
    server_errors: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    unsent: int = 0  # requests the HTTP client itself refused to send (URL over 64 KiB)
    keep: int = 50

    def fail(self, description: str) -> None:
        self.failure_count += 1
        if len(self.failures) < self.keep:
            self.failures.append(description)

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def send(client: Any, tally: Tally, role: str, method: str, url: str, headers: dict[str, str],
         content: bytes | None) -> Any:
    """One request, counted; a 5xx (or what the test client re-raises as one) is a failure."""
    shown = f"{method} {url[:300]} {(content or b'')[:300]!r}"
    try:
        response = client.request(method, url, headers=headers, content=content)
    except httpx.InvalidURL:  # the client itself refuses to send it (URL over 64 KiB): nothing to count
        tally.unsent += 1
        return None
    except Exception as error:  # the test client re-raises what became a 500
        tally.requests[role] = tally.requests.get(role, 0) + 1
        tally.server_errors[role] = tally.server_errors.get(role, 0) + 1
        tally.fail(f"500 ({type(error).__name__}: {str(error)[:200]}) as {role}: {shown}")
        return None
    tally.requests[role] = tally.requests.get(role, 0) + 1
    if response.status_code >= 500:
        tally.server_errors[role] = tally.server_errors.get(role, 0) + 1
        tally.fail(f"{response.status_code} as {role}: {shown} -> {response.text[:300]}")
    return response


def sweep_operation(client: Any, world: World, operation: Any, role: str, examples: int, tally: Tally,
                    seed: int | None = None) -> None:
    """Up to `examples` generated requests for one operation as `role`, counted in `tally`."""
    token = ROLES[role]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), data=st.data())
    def run(case: Any, data: Any) -> None:
        path_parameters = dict(case.path_parameters or {})
        for name, keys in REAL_IDS.items():
            if name in path_parameters:
                pick = data.draw(st.integers(0, 7))
                if pick >= 2:  # real ids 3 times in 4
                    path_parameters[name] = world.ids.get(key := data.draw(st.sampled_from(keys)), key)
                elif pick == 1:
                    path_parameters[name] = data.draw(hostile_text.filter(lambda text: text not in ("", ".", "..")))
        path = case.path
        for name, value in path_parameters.items():
            path = path.replace("{" + name + "}", _encode(str(value)))
        query = {**(case.query or {}), **(data.draw(queries) if case.method == "GET" else {})}
        for key, value in list(query.items()):
            if value in world.ids:  # "volA" → its id: markers and filters of real resources
                query[key] = world.ids[value]
        url = path + ("?" + "&".join(f"{_encode(str(k))}={_encode(str(v))}" for k, v in query.items())
                      if query else "")
        body = _body(case, data.draw, world.ids)
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": f"volume {data.draw(st.sampled_from(VERSIONS))}"}
        content: bytes | None = None
        if isinstance(body, bytes):
            content = body
        elif not isinstance(body, NotSet):
            content = json.dumps(body).encode()  # ASCII: surrogates and NUL travel as \\u escapes
        if content is not None:
            headers["Content-Type"] = "application/json"
        response = send(client, tally, role, case.method, url, headers, content)
        if response is not None and token != ADMIN:
            leaked = {s for s in world.secrets_of_b
                      if s in response.text and s not in url and s.encode() not in (content or b"")}
            if leaked:
                tally.fail(f"leak of {leaked} to {role}: {case.method} {url[:300]} -> {response.text[:300]}")

    if seed is not None:
        run = hypothesis.seed(seed)(run)
    started = time.monotonic()
    run()
    tally.seconds[role] = tally.seconds.get(role, 0.0) + time.monotonic() - started


def sweep(client: Any, world: World, operations: list[Any], examples: int, tally: Tally,
          seed: int | None = None, progress: Callable[[int], None] | None = None) -> None:
    for index, operation in enumerate(operations):
        for role in ROLES:
            sweep_operation(client, world, operation, role, examples, tally,
                            None if seed is None else seed + index)
        if progress is not None:
            progress(index)


# --- the fixed sweep: every hostile value in every slot of a known-good body, filter and path -------
FIXED_VALUES = ["\ud800", "a\x00b", "\udfff", "\x01\x1f\x7f", "{{}}", "{[1]:2}", "-" * 5000 + "1", "[" * 3000,
                "a" * 65536, "😀" * 300]
V, S = "@volA", "@snapA"
BASE_BODIES: dict[tuple[str, str], list[Any]] = {
    ("POST", "/v3/volumes"): [{"volume": {"size": 1, "name": "n", "description": "d", "volume_type": "public-t",
                                          "metadata": {"k": "v"}, "availability_zone": "nova"}},
                              {"volume": {"size": "1", "snapshot_id": S, "group_id": "@grpA"}},
                              {"volume": {"size": 1, "source_volid": V, "consistencygroup_id": "@grpA"}}],
    ("PUT", "/v3/volumes/{volume_id}"): [{"volume": {"name": "n", "description": "d", "metadata": {"k": "v"}}}],
    ("POST", "/v3/volumes/{volume_id}/metadata"): [{"metadata": {"k": "v"}}],
    ("PUT", "/v3/volumes/{volume_id}/metadata"): [{"metadata": {"k": "v"}}],
    ("PUT", "/v3/volumes/{volume_id}/metadata/{key}"): [{"meta": {"k": "v"}}],
    ("POST", "/v3/volumes/{volume_id}/action"): [
        {"os-extend": {"new_size": "2"}}, {"os-reset_status": {"status": "available", "attach_status": "detached",
                                                               "migration_status": "none"}},
        {"os-attach": {"host_name": "h", "mountpoint": "/d", "mode": "rw", "instance_uuid": "u"}},
        {"os-initialize_connection": {"connector": {"host": "h", "initiator": "i"}}},
        {"os-terminate_connection": {"connector": {"host": "h"}}}, {"os-detach": {"attachment_id": "a"}},
        {"revert": {"snapshot_id": S}}, {"os-set_bootable": {"bootable": "true"}}],
    ("POST", "/v3/snapshots"): [{"snapshot": {"volume_id": V, "name": "n", "description": "d",
                                              "metadata": {"k": "v"}, "force": "true"}}],
    ("PUT", "/v3/snapshots/{snapshot_id}"): [{"snapshot": {"name": "n", "description": "d"}}],
    ("POST", "/v3/snapshots/{snapshot_id}/action"): [{"os-reset_status": {"status": "available"}}],
    ("POST", "/v3/snapshots/{snapshot_id}/metadata"): [{"metadata": {"k": "v"}}],
    ("PUT", "/v3/snapshots/{snapshot_id}/metadata"): [{"metadata": {"k": "v"}}],
    ("PUT", "/v3/snapshots/{snapshot_id}/metadata/{key}"): [{"meta": {"k": "v"}}],
    ("POST", "/v3/types"): [{"volume_type": {"name": "n", "description": "d", "extra_specs": {"k": "v"},
                                             "os-volume-type-access:is_public": "true"}}],
    ("PUT", "/v3/types/{type_id}"): [{"volume_type": {"name": "n", "description": "d", "is_public": "true"}}],
    ("POST", "/v3/types/{type_id}/extra_specs"): [{"extra_specs": {"k": "v"}}],
    ("PUT", "/v3/types/{type_id}/extra_specs/{key}"): [{"k": "v"}],
    ("POST", "/v3/types/{type_id}/action"): [{"addProjectAccess": {"project": "p"}},
                                             {"removeProjectAccess": {"project": "p"}}],
    ("PUT", "/v3/os-services/{action}"): [{"host": "h", "binary": "cinder-volume", "disabled_reason": "r"}],
    ("PUT", "/v3/os-quota-sets/{project_id}"): [{"quota_set": {"volumes": "5", "gigabytes_plain": "5"}}],
    ("POST", "/v3/group_types"): [{"group_type": {"name": "n", "description": "d", "group_specs": {"k": "v"}}}],
    ("PUT", "/v3/group_types/{ref}"): [{"group_type": {"name": "n", "description": "d", "is_public": "true"}}],
    ("POST", "/v3/group_types/{ref}/group_specs"): [{"group_specs": {"k": "v"}}],
    ("PUT", "/v3/group_types/{ref}/group_specs/{key}"): [{"k": "v"}],
    ("POST", "/v3/groups"): [{"group": {"group_type": "@gtype", "volume_types": ["plain"], "name": "n",
                                        "description": "d", "availability_zone": "nova"}}],
    ("PUT", "/v3/groups/{group_id}"): [{"group": {"name": "n", "add_volumes": V, "remove_volumes": "x"}}],
    ("POST", "/v3/groups/action"): [{"create-from-src": {"group_snapshot_id": "@gsA", "name": "n"}},
                                    {"create-from-src": {"source_group_id": "@grpA", "description": "d"}}],
    ("POST", "/v3/groups/{group_id}/action"): [{"reset_status": {"status": "available"}},
                                               {"failover_replication": {"secondary_backend_id": "s"}}],
    ("POST", "/v3/group_snapshots"): [{"group_snapshot": {"group_id": "@grpA", "name": "n", "description": "d"}}],
    ("POST", "/v3/group_snapshots/{ident}/action"): [{"reset_status": {"status": "available"}}],
    ("POST", "/v3/consistencygroups"): [{"consistencygroup": {"volume_types": "plain", "name": "n"}}],
    ("PUT", "/v3/consistencygroups/{cg_id}"): [{"consistencygroup": {"name": "n", "add_volumes": "x"}}],
    ("POST", "/v3/consistencygroups/create_from_src"): [{"consistencygroup-from-src": {"cgsnapshot_id": "x",
                                                                                       "name": "n"}}],
    ("POST", "/v3/cgsnapshots"): [{"cgsnapshot": {"consistencygroup_id": "@grpA", "name": "n"}}],
}
PATH_DEFAULTS = {"key": "k", "action": "disable", "project_id": "projA"}


def _variants(body: Any, value: str) -> list[Any]:
    """`body` with one string leaf, or one key, replaced by `value`, for every leaf and key."""
    results: list[Any] = []

    def walk(node: Any, rebuild: Callable[[Any], Any]) -> None:
        if isinstance(node, str):
            results.append(rebuild(value))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, lambda new, i=index: rebuild([*node[:i], new, *node[i + 1:]]))
        elif isinstance(node, dict):
            for key, item in node.items():
                results.append(rebuild({(value if k == key else k): v for k, v in node.items()}))
                walk(item, lambda new, k=key: rebuild({**node, k: new}))

    walk(body, lambda new: new)
    return results


def _path(template: str, world: World, override: str | None = None) -> str:
    path = template
    while "{" in path:
        name = path[path.index("{") + 1:path.index("}")]
        keys = REAL_IDS.get(name)
        value = override if override is not None else (
            world.ids.get(keys[0], keys[0]) if keys else PATH_DEFAULTS.get(name, "x"))
        path = path.replace("{" + name + "}", _encode(value), 1)
    return path


def fixed_sweep(client: Any, world: World, operations: list[Any], tally: Tally) -> None:
    """Each FIXED_VALUE in every filter (as a reader), path parameter and body slot (as an admin, who
    gets furthest), on every operation: the same requests every run."""
    def request(role: str, method: str, url: str, body: Any = None) -> None:
        headers = {"X-Auth-Token": ROLES[role], "OpenStack-API-Version": "volume 3.71"}
        content = None if body is None else json.dumps(_resolve(body, world.ids)).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        send(client, tally, role, method, url, headers, content)

    started = time.monotonic()
    for number, operation in enumerate(operations):
        method, template = operation.method.upper(), operation.path
        for index, value in enumerate(FIXED_VALUES):
            if "{" in template:
                request("admin" if method != "GET" else "reader", method, _path(template, world, value[:8000]),
                        BASE_BODIES.get((method, template), [None])[0])
            if method == "GET":
                key = QUERY_KEYS[(number * len(FIXED_VALUES) + index) % len(QUERY_KEYS)]
                request("reader", method, f"{_path(template, world)}?{_encode(key)}={_encode(value[:8000])}")
            for body in BASE_BODIES.get((method, template), []):
                for variant in _variants(body, value):
                    request("admin", method, _path(template, world), variant)
    tally.seconds["fixed"] = time.monotonic() - started
