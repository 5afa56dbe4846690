"""Helpers shared by the views."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

# Which answer a view renders. Cinder decorates its base views through API extensions that hook only
# some controller methods (os-vol-*-attr, os-extended-snapshot-attributes, os-volume-type-access on
# show and the detail list; qos_specs_id in the v3 types controller), so the create and update answers
# of a resource carry fewer keys than show.
Answer = Literal["show", "create", "update"]


def timestamp(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None


def links(base: str, prefix: str, collection: str, ident: str) -> list[dict[str, Any]]:
    """self (versioned) and bookmark (unversioned) links, keeping the URL's project segment."""
    bookmark_prefix = prefix[len("/v3"):]
    return [{"rel": "self", "href": f"{base}{prefix}/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{base}{bookmark_prefix}/{collection}/{ident}"}]
