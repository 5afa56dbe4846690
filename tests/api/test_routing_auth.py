"""URL layout with and without `{project_id}`, noauth tokens (reference §1.2, §1.5, §8.3-4)."""
from __future__ import annotations

import pytest

from cinderblock.api.middleware import parse_noauth_token
from tests.api.helpers import assert_fault, headers
from tests.conftest import Cloud

PROJECT = "0123abcd-ef"


def test_project_url_works_and_links_keep_segment(cloud: Cloud) -> None:
    token = headers(token=f"u:{PROJECT}")
    created = cloud.client.post(f"/v3/{PROJECT}/volumes", headers=token, json={"volume": {"size": 1}})
    assert created.status_code == 202, created.text
    volume = created.json()["volume"]
    assert volume["links"] == [
        {"rel": "self", "href": f"http://cinderblock.test/v3/{PROJECT}/volumes/{volume['id']}"},
        {"rel": "bookmark", "href": f"http://cinderblock.test/{PROJECT}/volumes/{volume['id']}"},
    ]
    shown = cloud.client.get(f"/v3/{PROJECT}/volumes/{volume['id']}", headers=token)
    assert shown.status_code == 200 and shown.json()["volume"]["os-vol-tenant-attr:tenant_id"] == PROJECT
    # The same resource without the project segment, and links that follow the request's form.
    plain = cloud.client.get(f"/v3/volumes/{volume['id']}", headers=token)
    assert plain.status_code == 200
    assert plain.json()["volume"]["links"][0]["href"] == f"http://cinderblock.test/v3/volumes/{volume['id']}"
    listed = cloud.client.get(f"/v3/{PROJECT}/volumes", headers=token).json()["volumes"]
    assert listed[0]["links"][0]["href"].startswith(f"http://cinderblock.test/v3/{PROJECT}/volumes/")


def test_project_mismatch_is_400(cloud: Cloud) -> None:
    response = cloud.client.get("/v3/abcdef/volumes", headers=headers(token="u:012345"))
    assert_fault(response, 400, "badRequest", "Malformed request url")


def test_non_hex_project_segment_is_404(cloud: Cloud) -> None:
    response = cloud.client.get("/v3/admin/volumes", headers=headers())
    assert response.status_code == 404


def test_unknown_route_is_404(cloud: Cloud) -> None:
    assert cloud.client.get("/v3/no-such-collection", headers=headers()).status_code == 404
    assert cloud.client.get("/v4/volumes", headers=headers()).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("prefix", ["/v3", f"/v3/{PROJECT}"])
def test_empty_id_is_404_not_a_redirect(cloud: Cloud, method: str, prefix: str) -> None:
    # `volumes/` is `volumes/{id}` with an empty id, as Cinder's router sees it: 404 (Tempest
    # VolumesNegativeTest.test_{get,update,delete}_volume_without_passing_volume_id). A redirect to
    # `volumes` would list the volumes (GET) or answer 405 (PUT, DELETE) once the client follows it.
    token = headers(token=f"u:{PROJECT}")
    response = cloud.client.request(method, f"{prefix}/volumes/", headers=token, follow_redirects=False,
                                    json={"volume": {"name": "x"}} if method == "PUT" else None)
    assert_fault(response, 404, "itemNotFound")
    assert cloud.client.get(f"{prefix}/snapshots/", headers=token, follow_redirects=False).status_code == 404
    # the version document keeps its trailing-slash form
    assert cloud.client.get("/v3/", headers=headers(token=None)).status_code == 200


@pytest.mark.parametrize("path", ["/v3/volumes", "/v3/volumes/detail", "/v3/types", f"/v3/{PROJECT}/volumes"])
def test_missing_token_is_401(cloud: Cloud, path: str) -> None:
    response = cloud.client.get(path, headers=headers(token=None))
    assert_fault(response, 401, "unauthorized")


def test_token_project_scopes_resources(cloud: Cloud) -> None:
    created = cloud.client.post("/v3/volumes", headers=headers(token="alice:abc"), json={"volume": {"size": 1}})
    assert created.status_code == 202
    volume = created.json()["volume"]
    assert volume["user_id"] == "alice"
    # The os-vol-tenant-attr extension shows on GET, not in the create answer (as in Cinder).
    shown = cloud.client.get(f"/v3/volumes/{volume['id']}", headers=headers(token="alice:abc")).json()["volume"]
    assert shown["os-vol-tenant-attr:tenant_id"] == "abc"
    # Another project does not see it, even by id (member role: not admin).
    other = cloud.client.get(f"/v3/volumes/{volume['id']}", headers=headers(token="bob:def:member"))
    assert_fault(other, 404, "itemNotFound", f"Volume {volume['id']} could not be found.")
    # A token without ':' is user = project.
    solo = cloud.client.post("/v3/volumes", headers=headers(token="carol"), json={"volume": {"size": 1}})
    assert solo.json()["volume"]["user_id"] == "carol"
    solo_id = solo.json()["volume"]["id"]
    shown = cloud.client.get(f"/v3/volumes/{solo_id}", headers=headers(token="carol")).json()["volume"]
    assert shown["os-vol-tenant-attr:tenant_id"] == "carol"


@pytest.mark.parametrize("token,user,project,admin", [
    ("admin:admin", "admin", "admin", True),
    ("u:p", "u", "p", True),
    ("solo", "solo", "solo", True),
    ("u:p:member", "u", "p", False),
    ("u:p:member,admin", "u", "p", True),
    ("u:p:reader,member", "u", "p", False),
    (":p", "", "p", True),
])
def test_parse_noauth_token(token: str, user: str, project: str, admin: bool) -> None:
    context = parse_noauth_token(token)
    assert (context.user_id, context.project_id, context.is_admin) == (user, project, admin)
