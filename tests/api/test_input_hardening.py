"""Hostile input never becomes a 5xx (issue 12 §2) and Cinder's input limits hold (§3).

- list filter values go through the filter grammar (api/filters.py): broken structures are a 400;
- NUL characters and lone UTF-16 surrogates are refused where bodies, query strings and paths enter;
- bodies over osapi_max_request_body_size are a 413 before parsing;
- metadata keys/values over 255 characters, blank keys and more than quota_metadata_items items;
- action bodies with keys the action does not take, a volume create naming two sources.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.api.helpers import action, assert_fault, headers, volume_ids
from tests.conftest import Cloud

READER = "u:projA:reader"
LISTS = ["/v3/volumes", "/v3/volumes/detail", "/v3/snapshots", "/v3/snapshots/detail", "/v3/groups",
         "/v3/groups/detail", "/v3/group_snapshots", "/v3/group_snapshots/detail", "/v3/consistencygroups",
         "/v3/consistencygroups/detail"]
BAD_FILTERS = ["{{}}", "{[1]:2}", "{[]}", "-" * 20_000 + "1", "[" * 5000]


@pytest.mark.parametrize("path", LISTS)
def test_broken_filter_values_are_400_on_every_list(cloud: Cloud, path: str) -> None:
    key = "volume_id" if path.startswith("/v3/snapshots") else "status"
    for value in BAD_FILTERS:
        response = cloud.client.get(f"{path}?{key}={quote(value)}", headers=headers("3.71", READER))
        assert_fault(response, 400, "badRequest",
                     contains=f"Invalid input received: Invalid value for filter '{key}'")
    response = cloud.client.get(f"{path}?status={quote(str(['available', 'error']))}",
                                headers=headers("3.71", READER))
    assert response.status_code == 200, response.text


def test_metadata_filter_of_broken_structure_is_400(cloud: Cloud) -> None:
    for path in ("/v3/volumes", "/v3/snapshots"):
        response = cloud.client.get(f"{path}?metadata={quote('{{}}')}", headers=headers("3.71", READER))
        assert_fault(response, 400, "badRequest", contains="filter 'metadata'")
