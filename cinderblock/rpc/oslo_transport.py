"""oslo.messaging behind the Transport seam (scale-out mode, RabbitMQ).

Resilience choices (all overridable in `[oslo_messaging_rabbit]` of the same config file):
- queues and messages are durable, so what was cast while a consumer or the broker itself was
  restarting is delivered afterwards instead of vanishing with a transient queue;
- every send gives up after a bounded number of reconnection attempts (oslo.messaging's default
  is to retry forever, which blocks an API request for as long as the broker is away): in the API
  (API_SEND_RETRIES) the caller gets ServiceUnavailable (503) within seconds and undoes its claim;
  services, which nobody waits for, keep trying for about a minute (SERVICE_SEND_RETRIES) so a
  create the scheduler placed during a broker restart still reaches its volume service;
- a server runs `workers` threads, not oslo.messaging's 64, and reads a message only when one of
  them is free: oslo.messaging acknowledges an RPC message as soon as it reads it, so whatever it
  read ahead would die with the process (kill -9), while unread messages stay in the queue for the
  restarted service. What a kill can still lose is what the workers were running, which recovery
  settles, plus at most one message read for the next free worker (a create lost that way is
  failed by the scheduler's sweeper, see runtime/service.py).
"""
from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ParamSpec, TypeVar

# oslo.messaging loads oslo.service's eventlet backend (imported, never monkey-patched: servers
# run the threading executor); its import-time deprecation notice is only noise in service logs.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import futurist  # noqa: E402
import kombu.exceptions  # noqa: E402
import oslo_messaging as messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402

from cinderblock.model import errors  # noqa: E402
from cinderblock.rpc.transport import ListenerError, RpcServer, Transport  # noqa: E402

LOG = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
EXCHANGE = "cinderblock"
ALLOWED_REMOTE_MODULES = ["cinderblock.model.errors"]
# What a send raises when the broker stays away: retries exhausted, or (new pooled connection)
# kombu's own error or the socket's.
BROKER_DOWN = (messaging.MessageDeliveryFailure, kombu.exceptions.OperationalError, OSError)
# Reconnection attempts of one send; with the default intervals (1 s, +2 s per attempt, +1 s delay):
API_SEND_RETRIES = 1  # about 3 s
SERVICE_SEND_RETRIES = 8  # about 70 s
# A few messages in flight per connection: several consumers of one topic share the work.
RABBIT_DEFAULTS = {"amqp_durable_queues": True, "rabbit_qos_prefetch_count": 10}


def _register_global_only_options(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging registers its tracing and metrics options only on the global CONF; our
    private ConfigOpts needs them too, or the first call fails with NoSuchOptError."""
    import importlib

    for module_name, attribute in (("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
                                   ("oslo_messaging._metrics.client", "oslo_messaging_metrics")):
        try:
            options = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue  # a version without them does not read them either
        conf.register_opts(options, group=attribute)


def _register_rabbit_defaults(conf: cfg.ConfigOpts) -> None:
    """Register the driver's options before it does, to change a few defaults (see module doc)."""
    from oslo_messaging import opts

    for group, options in opts.list_opts():
        if group == "oslo_messaging_rabbit":
            conf.register_opts(options, group=group)
    for name, value in RABBIT_DEFAULTS.items():
        conf.set_default(name, value, group="oslo_messaging_rabbit")


def _unavailable(exc: Exception) -> errors.ServiceUnavailable:
    LOG.warning("message broker unreachable: %s", exc)  # names hosts: logged, not shown to clients
    return errors.ServiceUnavailable("The message broker is not reachable at the moment; try again later.")


class _Endpoint:
    """Adapts our `(context, **kwargs)` endpoints to oslo.messaging's `(ctxt, **kwargs)`."""

    def __init__(self, endpoint: object) -> None:
        self._endpoint = endpoint
        self.target = messaging.Target(version="1.0")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._endpoint, name)


class _BlockingExecutor(futurist.ThreadPoolExecutor):
    """submit() waits while every worker is busy, so the server reads no message ahead (see above)."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self._free = threading.BoundedSemaphore(max_workers)

    # futurist's and the standard library's submit differ by a positional-only marker: no one signature
    # satisfies both bases, and this one takes the calls of either.
    def submit(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:  # type: ignore[override]
        self._free.acquire()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._free.release()
            raise
        future.add_done_callback(lambda _: self._free.release())
        return future


class _OsloServer(RpcServer):
    def __init__(self, server: Any) -> None:
        self._server = server

    def stop(self) -> None:
        self._server.stop()  # no more reads: what is still queued stays with the broker
        self._server.wait()  # the messages being handled finish

    def consuming(self) -> bool:
        # oslo.messaging has no public probe: its listener's polling thread is what takes messages.
        thread = getattr(getattr(self._server, "listener", None), "_listen_thread", None)
        return bool(getattr(self._server, "_started", False)) and (thread is None or thread.is_alive())


class OsloTransport(Transport):
    def __init__(self, url: str, config_files: tuple[str, ...] = (), send_retries: int = API_SEND_RETRIES) -> None:
        self._send_retries = send_retries
        # A ConfigOpts of its own on the same files: oslo.messaging registers options (its own
        # transport_url among them) that must not clash with cinderblock's declarations.
        conf = cfg.ConfigOpts()
        conf(args=[], project="cinderblock", default_config_files=list(config_files))
        _register_global_only_options(conf)
        _register_rabbit_defaults(conf)
        self._transport = messaging.get_rpc_transport(conf, url=url,
                                                      allowed_remote_exmods=ALLOWED_REMOTE_MODULES)
        self._conf = conf

    def _client(self, topic: str, server: str | None, fanout: bool = False,
                timeout: float | None = None) -> Any:
        target = messaging.Target(exchange=EXCHANGE, topic=topic, server=server, fanout=fanout, version="1.0")
        return messaging.get_rpc_client(self._transport, target, timeout=timeout, retry=self._send_retries)

    def cast(self, topic: str, server: str | None, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        try:
            self._client(topic, server).cast(context, method, **kwargs)
        except BROKER_DOWN as exc:
            raise _unavailable(exc) from exc

    def call(self, topic: str, server: str | None, method: str, context: dict[str, Any],
             timeout: float = 60.0, **kwargs: Any) -> Any:
        try:
            return self._client(topic, server, timeout=timeout).call(context, method, **kwargs)
        except messaging.MessagingTimeout as exc:
            raise errors.ServiceUnavailable(f"No {topic} service answered within {timeout:.0f}s.") from exc
        except BROKER_DOWN as exc:
            raise _unavailable(exc) from exc

    def fanout(self, topic: str, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        try:
            self._client(topic, None, fanout=True).cast(context, method, **kwargs)
        except BROKER_DOWN as exc:
            raise _unavailable(exc) from exc

    def serve(self, topic: str, server: str, endpoint: object, workers: int) -> RpcServer:
        target = messaging.Target(exchange=EXCHANGE, topic=topic, server=server, version="1.0")
        rpc_server = messaging.get_rpc_server(self._transport, target, [_Endpoint(endpoint)])
        # oslo.messaging builds its executor from this class in start(); no public hook for it.
        rpc_server._executor_cls = _BlockingExecutor
        try:
            rpc_server.start(override_pool_size=workers)
        except Exception as exc:  # a queue the broker refuses (declared otherwise), the broker away...
            raise ListenerError(f"cannot listen on {topic}.{server}: {exc}") from exc
        return _OsloServer(rpc_server)

    def close(self) -> None:
        self._transport.cleanup()
