"""Version documents, readable without a token."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cinderblock.api import microversions as mv
from cinderblock.api.context import base_url

router = APIRouter(tags=["versions"])
UPDATED = "2023-08-31T00:00:00Z"


def version_document(request: Request) -> dict[str, Any]:
    public = request.app.state.services.settings.public_endpoint
    return {"versions": [{
        "id": "v3.0", "status": "CURRENT", "version": mv.fmt(mv.MAX), "min_version": mv.fmt(mv.MIN),
        "updated": UPDATED,
        "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{base_url(request, public)}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }]}


@router.get("/", summary="All API versions (300 Multiple Choices, as Cinder)")
def versions(request: Request) -> JSONResponse:
    return JSONResponse(version_document(request), status_code=300)


@router.get("/v3", summary="The v3 version document")
@router.get("/v3/", summary="The v3 version document", include_in_schema=False)
def version_v3(request: Request) -> JSONResponse:
    return JSONResponse(version_document(request))
