"""The transport seam: one interface, an in-process and an oslo.messaging implementation.

Endpoints are plain objects whose public methods take `(context: dict, **kwargs)` and return
JSON-able values. Clients never see which transport carries their calls.
"""
from __future__ import annotations

import abc
import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cinderblock.model.errors import ServiceUnavailable

LOG = logging.getLogger(__name__)


class ListenerError(Exception):
    """A server could not start listening (its queue refused, the broker unreachable): the service
    must not run, nor count as up, without it."""


class RpcServer(abc.ABC):
    @abc.abstractmethod
    def stop(self) -> None:
        """Stop taking requests and wait for the running ones."""

    def consuming(self) -> bool:
        """Whether it is taking messages now (what the service's heartbeat reports)."""
        return True


class Transport(abc.ABC):
    @abc.abstractmethod
    def cast(self, topic: str, server: str | None, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        """Fire and forget to one server of topic (any server when None)."""

    @abc.abstractmethod
    def call(self, topic: str, server: str | None, method: str, context: dict[str, Any],
             timeout: float = 60.0, **kwargs: Any) -> Any:
        """Run method on one server and return its result; its exception is raised here."""

    @abc.abstractmethod
    def fanout(self, topic: str, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        """Cast to every server of topic."""

    @abc.abstractmethod
    def serve(self, topic: str, server: str, endpoint: object, workers: int) -> RpcServer:
        """Start dispatching topic/server messages to endpoint with `workers` threads."""

    def close(self) -> None:  # noqa: B027 -- optional: only transports holding connections override it
        """Release connections."""


class _LocalServer(RpcServer):
    def __init__(self, transport: "InProcessTransport", topic: str, server: str, endpoint: object,
                 workers: int) -> None:
        self.transport, self.topic, self.server, self.endpoint = transport, topic, server, endpoint
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rpc-{server}")
        self._stopped = False

    def dispatch(self, method: str, context: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        if method.startswith("_") or not hasattr(self.endpoint, method):
            raise AttributeError(f"{self.topic} endpoint has no method {method!r}")
        return getattr(self.endpoint, method)(context, **kwargs)

    def submit_cast(self, method: str, context: dict[str, Any], kwargs: dict[str, Any]) -> None:
        def run() -> None:
            try:
                self.dispatch(method, context, kwargs)
            except Exception:  # a cast has no caller to tell; the endpoint recorded the outcome
                LOG.exception("cast %s.%s to %s failed", self.topic, method, self.server)

        self.executor.submit(run)

    def stop(self) -> None:
        self._stopped = True
        self.transport._unregister(self)
        self.executor.shutdown(wait=True)

    def consuming(self) -> bool:
        return not self._stopped


class InProcessTransport(Transport):
    """Direct dispatch to endpoints living in this process (embedded mode): no broker, no polling."""

    def __init__(self) -> None:
        self._servers: dict[str, dict[str, _LocalServer]] = {}
        self._lock = threading.Lock()
        self._round_robin = itertools.count()

    def _pick(self, topic: str, server: str | None) -> _LocalServer:
        with self._lock:
            servers = self._servers.get(topic, {})
            if server is not None:
                found = servers.get(server)
            else:
                candidates = list(servers.values())
                found = candidates[next(self._round_robin) % len(candidates)] if candidates else None
        if found is None:
            raise ServiceUnavailable(f"No {topic} service {server or ''} is running.".replace("  ", " "))
        return found

    def cast(self, topic: str, server: str | None, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        self._pick(topic, server).submit_cast(method, context, kwargs)

    def call(self, topic: str, server: str | None, method: str, context: dict[str, Any],
             timeout: float = 60.0, **kwargs: Any) -> Any:
        # Run in the caller's thread: it waits anyway, and no pool slot can deadlock it.
        return self._pick(topic, server).dispatch(method, context, kwargs)

    def fanout(self, topic: str, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        with self._lock:
            servers = list(self._servers.get(topic, {}).values())
        for local in servers:
            local.submit_cast(method, context, kwargs)

    def serve(self, topic: str, server: str, endpoint: object, workers: int) -> RpcServer:
        local = _LocalServer(self, topic, server, endpoint, workers)
        with self._lock:
            self._servers.setdefault(topic, {})[server] = local
        return local

    def _unregister(self, local: _LocalServer) -> None:
        with self._lock:
            self._servers.get(local.topic, {}).pop(local.server, None)


def get_transport(url: str, config_files: tuple[str, ...] = (), service: bool = False) -> Transport:
    """service: sends of a scheduler or volume service, which nobody waits for, retry longer."""
    if url.startswith("inprocess"):
        return InProcessTransport()
    from cinderblock.rpc import oslo_transport  # imported only when scaled out

    retries = oslo_transport.SERVICE_SEND_RETRIES if service else oslo_transport.API_SEND_RETRIES
    return oslo_transport.OsloTransport(url, config_files, retries)
