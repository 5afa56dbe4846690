"""Domain errors. No HTTP here: `api/faults.py` maps these to Cinder's fault envelope.

    CinderblockError
    ├── NotFound                 a resource id or name that does not exist (for this caller)
    ├── Invalid                  a request that breaks a rule: bad input or wrong state
    │   ├── InvalidInput         malformed or out-of-range input
    │   └── InvalidState         the resource is in a state that forbids the operation
    ├── Conflict                 duplicate name/association, or state conflict Cinder answers with 409
    ├── QuotaExceeded            a quota would be exceeded (413 overLimit)
    ├── Forbidden                policy refuses the caller
    ├── VersionNotFound          the operation needs a newer microversion (404)
    ├── ServiceUnavailable       a dependency (database, broker, backend service) is not reachable
    │   └── DatabaseUnavailable  the database connection is lost (worth retrying in a service)
    └── DriverError              storage failed; raised by drivers, caught by workflows only
        └── InvalidReplicationTarget  a failover names no usable target (nothing was changed)
"""
from __future__ import annotations


class CinderblockError(Exception):
    """Base of every error cinderblock raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CinderblockError):
    @classmethod
    def of(cls, kind: str, ident: str) -> "NotFound":
        return cls(f"{kind} {ident} could not be found.")


class Invalid(CinderblockError):
    pass


class InvalidInput(Invalid):
    pass


class InvalidState(Invalid):
    pass


class Conflict(CinderblockError):
    pass


class QuotaExceeded(CinderblockError):
    """Carries the Cinder class name so the API can prefix the message like Cinder does."""

    def __init__(self, message: str, kind: str = "OverQuota") -> None:
        super().__init__(message)
        self.kind = kind


class Forbidden(CinderblockError):
    pass


class VersionNotFound(CinderblockError):
    pass


class ServiceUnavailable(CinderblockError):
    pass


class DatabaseUnavailable(ServiceUnavailable):
    pass


class DriverError(CinderblockError):
    pass


class InvalidReplicationTarget(DriverError):
    pass
