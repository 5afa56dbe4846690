"""Backend replication admin actions (os-services failover_host / failover, freeze, thaw).

Failover: one compare-and-swap claims the service (`enabled | failed-over | failover-error` and up →
`failing-over`, model/group_transitions.py), then a cast; the caller polls os-services. Freeze and thaw
are calls: the volume service asks its driver first and writes `frozen` only once it agreed.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.repos import services as repo
from cinderblock.domain.common import DomainDeps
from cinderblock.domain.services import is_up
from cinderblock.model import group_transitions as gtr
from cinderblock.model.errors import InvalidInput
from cinderblock.model.records import BackendAddress, RequestContext

VOLUME_BINARY = "cinder-volume"
# The service's states a failover starts from (enabled, failed-over, failover-error).
FAILOVER_FROM = tuple(sorted(gtr.SERVICE_FAILOVER_FROM))


class BackendReplication:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps

    def _services(self, host: str | None, cluster: str | None) -> list[tables.Service]:
        if bool(host) == bool(cluster):
            raise InvalidInput("Invalid input received: give exactly one of host and cluster."
                               if host or cluster else "Host field is missing.")
        if cluster:  # no clusters here: every backend is its own service
            raise InvalidInput(f"Invalid input received: No service found with cluster={cluster}.")
        assert host is not None
        service_host = BackendAddress.parse(host).service_host
        with self.deps.db.read() as session:
            rows = repo.find(session, service_host, VOLUME_BINARY)
            for row in rows:
                session.expunge(row)
        if not rows:
            raise InvalidInput(f"Invalid input received: No service found with host={host}.")
        return rows

    def failover(self, context: RequestContext, host: str | None, cluster: str | None,
                 backend_id: str | None) -> None:
        if backend_id is not None and not isinstance(backend_id, str):
            raise InvalidInput("Invalid input received: backend_id must be a string or null.")
        services = self._services(host, cluster)
        for service in services:
            if not is_up(service, self.deps.settings.service_down_time):
                raise InvalidInput(f"Invalid input received: the volume service {service.host} is down.")
        with self.deps.db.write() as session:
            won = [service for service in services if state.move(session, gtr.SERVICE_FAILOVER, service.id)]
            if not won:
                statuses = sorted({s.replication_status for s in services})
                raise InvalidInput(
                    "Invalid input received: No service could be changed: replication_status "
                    f"{statuses} must be one of {[str(s) for s in FAILOVER_FROM]} to failover.")
        for service in won:
            try:
                self.deps.volumes.failover(context, service.host, backend_id)
            except Exception:  # nobody will run it: give the service its state back
                with self.deps.db.write() as session:
                    state.move(session, gtr.SERVICE_FAILOVER_UNDONE, service.id, to=service.replication_status)
                raise

    def freeze(self, context: RequestContext, host: str | None, cluster: str | None) -> None:
        for service in self._services(host, cluster):
            self.deps.volumes.freeze_host(context, service.host)

    def thaw(self, context: RequestContext, host: str | None, cluster: str | None) -> None:
        for service in self._services(host, cluster):
            self.deps.volumes.thaw_host(context, service.host)


def reported_targets(session: Session, service_host: str) -> list[str]:
    """Backend ids of the targets the backend last reported (never the rest of replication_device:
    Cinder shows admins every key, secrets included)."""
    caps = session.scalar(select(tables.Service.capabilities).where(
        tables.Service.host == service_host, tables.Service.binary == VOLUME_BINARY))
    return [str(t) for t in (caps or {}).get("replication_targets") or []]
