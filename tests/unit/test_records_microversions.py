"""model/records.BackendAddress.parse and api/microversions.negotiate."""
from __future__ import annotations

import pytest

from cinderblock.api import microversions as mv
from cinderblock.model.errors import InvalidInput
from cinderblock.model.records import BackendAddress, RequestContext


@pytest.mark.parametrize("text,host,backend,pool,service_host", [
    ("node@local#pool1", "node", "local", "pool1", "node@local"),
    ("node@local", "node", "local", None, "node@local"),
    ("node", "node", None, None, "node"),
    ("node#pool1", "node", None, "pool1", "node"),
    ("node.example.com@ceph-1#rbd#x", "node.example.com", "ceph-1", "rbd#x", "node.example.com@ceph-1"),
    ("node@", "node", None, None, "node"),
    ("node@local#", "node", "local", None, "node@local"),
])
def test_backend_address_parse(text: str, host: str, backend: str | None, pool: str | None,
                               service_host: str) -> None:
    address = BackendAddress.parse(text)
    assert (address.host, address.backend, address.pool) == (host, backend, pool)
    assert address.service_host == service_host


@pytest.mark.parametrize("text", ["node@local#pool1", "node@local", "node", "node#p"])
def test_backend_address_round_trip(text: str) -> None:
    assert str(BackendAddress.parse(text)) == text


def test_request_context_wire_round_trip() -> None:
    context = RequestContext("u", "p", False, ("member",), "req-1")
    assert RequestContext.from_wire(context.to_wire()) == context
    assert RequestContext.from_wire({"user_id": "u", "project_id": "p"}).is_admin is False


@pytest.mark.parametrize("header,expected", [
    (None, (3, 0)), ("volume 3.0", (3, 0)), ("volume 3.71", (3, 71)), ("volume latest", (3, 71)),
    ("volume 3.5", (3, 5)), ("compute 2.1, volume 3.27", (3, 27)), ("volume 3.40, compute 2.90", (3, 40)),
    ("  volume   3.12  ", (3, 12)), ("block-storage-volume 3.2", (3, 2)),
])
def test_negotiate(header: str | None, expected: tuple[int, int]) -> None:
    version = mv.negotiate(header)
    assert (version.major, version.minor) == expected
    assert str(version) == f"{expected[0]}.{expected[1]}"


@pytest.mark.parametrize("header", ["volume 3.72", "volume 2.0", "volume 4.0", "volume 3.999", "volume 1.0"])
def test_negotiate_not_acceptable(header: str) -> None:
    with pytest.raises(mv.VersionNotAcceptable) as raised:
        mv.negotiate(header)
    requested = header.split()[1]
    assert raised.value.requested == requested
    assert str(raised.value) == (f"Version {requested} is not supported by the API. Minimum is 3.0 and maximum "
                                 f"is 3.71.")


@pytest.mark.parametrize("header", ["volume 3.01", "volume 3.x", "volume 3", "volume", "volume 3.1.1",
                                    "volume 03.1", "volume -3.1", "compute 2.1", "", "volume v3.1"])
def test_negotiate_invalid(header: str) -> None:
    with pytest.raises(InvalidInput):
        mv.negotiate(header)


def test_version_ordering() -> None:
    assert mv.Version(3, 42).at_least(mv.VOLUME_EXTEND_INUSE)
    assert not mv.Version(3, 41).at_least(mv.VOLUME_EXTEND_INUSE)
    assert mv.Version(3, 9) < mv.Version(3, 10)  # numeric, not lexical
    assert mv.fmt(mv.MAX) == "3.71" and mv.fmt(mv.MIN) == "3.0"
