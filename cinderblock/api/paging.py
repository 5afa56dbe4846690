"""List parameters: limit, marker, offset, sort, filters, and absolute next links."""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request

from cinderblock.api import microversions as mv
from cinderblock.api.context import base_url
from cinderblock.api.filters import parse_value
from cinderblock.db.query import ListQuery
from cinderblock.model.errors import InvalidInput

PAGING_KEYS = {"limit", "marker", "offset", "sort", "sort_key", "sort_dir", "with_count", "all_tenants"}
# API name → column name.
ALIASES = {"name": "display_name", "display_name": "display_name", "description": "display_description"}


R = TypeVar("R")
DB_MAX_INT = 2**31 - 1  # Cinder's bound on offset: the databases' INTEGER


def _int(value: str, name: str, minimum: int, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"Invalid input received: {name} param must be an integer") from None
    if number < minimum:
        raise InvalidInput(f"Invalid input received: {name} param must be positive")
    if maximum is not None and number > maximum:
        raise InvalidInput(f"Invalid input received: {name} param must be <= {maximum}")
    return number


def parse_sort(params: Mapping[str, str], sortable: Collection[str],
               aliases: Mapping[str, str] = ALIASES) -> list[tuple[str, str]]:
    if "sort" in params and ("sort_key" in params or "sort_dir" in params):
        raise InvalidInput("Invalid input received: The 'sort_key' and 'sort_dir' parameters are deprecated and "
                           "cannot be used with the 'sort' parameter.")
    pairs: list[tuple[str, str]] = []
    if "sort" in params:
        for item in params["sort"].split(","):
            key, _, direction = item.strip().partition(":")
            pairs.append((key, direction or "desc"))
    elif "sort_key" in params or "sort_dir" in params:
        pairs.append((params.get("sort_key", "created_at"), params.get("sort_dir", "desc")))
    else:
        pairs.append(("created_at", "desc"))
    result = []
    for key, direction in pairs:
        column = aliases.get(key, key)
        if column not in sortable:
            raise InvalidInput(f"Invalid input received: Invalid sort key {key}")
        if direction not in ("asc", "desc"):
            raise InvalidInput(f"Invalid input received: Invalid sort dir {direction}")
        result.append((column, direction))
    return result


def sort_records(rows: Sequence[R], params: Mapping[str, str], fields: Mapping[str, Callable[[R], Any]]) -> list[R]:
    """`sort` / `sort_key` / `sort_dir` over a short list already read (volume and group types);
    without them the list keeps its order. Nulls sort first, as in the databases' ascending order."""
    if not {"sort", "sort_key", "sort_dir"} & set(params):
        return list(rows)
    result = list(rows)
    for key, direction in reversed(parse_sort(params, fields, aliases={})):
        value = fields[key]
        result.sort(key=lambda row: (value(row) is not None, value(row)), reverse=direction == "desc")
    return result


# Sort keys of volume and group types (Cinder sorts them by any column; these are the ones shown).
TYPE_SORT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda row: row.id, "name": lambda row: row.name, "description": lambda row: row.description,
    "is_public": lambda row: row.is_public, "created_at": lambda row: row.created_at}


def is_public_filter(value: str | None) -> bool | None:
    """`is_public` of a type list: absent → public only; 'None' (any case) → all; else a boolean."""
    if value is None:
        return True
    text = value.strip().lower()
    if text == "none":
        return None
    if text in ("true", "1", "yes", "on", "t", "y"):
        return True
    if text in ("false", "0", "no", "off", "f", "n"):
        return False
    raise InvalidInput(f"Invalid input received: Invalid is_public filter [{value}]")


def truthy(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "y", "on", "t")


def parse_list(request: Request, version: mv.Version, max_limit: int, sortable: set[str],
               allowed_filters: Sequence[str], columns: Mapping[str, str],
               is_admin: bool) -> tuple[ListQuery, dict[str, Any]]:
    """→ the query for the database, plus filters the caller applies itself (e.g. metadata)."""
    params = dict(request.query_params)
    limit = min(_int(params["limit"], "limit", 0), max_limit) if "limit" in params else max_limit
    offset = _int(params["offset"], "offset", 0, DB_MAX_INT) if "offset" in params else 0
    filters: dict[str, Any] = {}
    like: dict[str, str] = {}
    special: dict[str, Any] = {}
    unknown = []
    for key, value in params.items():
        if key in PAGING_KEYS:
            continue
        # Below 3.34 `name~` is not a LIKE filter but an unknown key of its own.
        fuzzy = key.endswith("~") and version.at_least(mv.LIKE_FILTER)
        name = key[:-1] if fuzzy else key
        if name not in allowed_filters and name not in columns:
            if not is_admin:
                unknown.append(key)
            continue
        column = columns.get(name)
        if column is None:
            special[name] = value
        elif fuzzy:
            like[column] = value
        else:
            # Names are compared as sent (Cinder does not evaluate them either).
            free_text = column in ("display_name", "display_description")
            filters[column] = value if free_text else parse_value(key, value)
    if unknown and version.at_least(mv.RESOURCE_FILTER):
        raise InvalidInput(f"Invalid input received: Invalid filters {','.join(unknown)} are found in query options.")
    query = ListQuery(filters=filters, like_filters=like, sort=parse_sort(params, sortable), limit=limit,
                      marker=params.get("marker"), offset=offset,
                      with_count=version.at_least(mv.SUPPORT_COUNT_INFO) and truthy(params.get("with_count")))
    return query, special


def next_link(request: Request, public_endpoint: str | None, collection_path: str, items: Sequence[Any],
              limit: int, key: str) -> dict[str, Any]:
    """`{"<key>": [{"rel": "next", "href": ...}]}` when the page is full, else {}."""
    if not items or len(items) < limit:
        return {}
    params = {k: v for k, v in request.query_params.items() if k != "marker"}
    params["marker"] = items[-1].id
    href = (f"{base_url(request, public_endpoint)}{request.state.url_prefix}/{collection_path}"
            f"?{urlencode(params)}")
    return {key: [{"rel": "next", "href": href}]}
