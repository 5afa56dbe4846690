"""`cinderblock` command line: sub-commands only; the runtime package does the work."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from cinderblock.config.settings import ConfigError, Settings, build_config, load_settings
from cinderblock.volume.loading import driver_options

if TYPE_CHECKING:
    from fastapi import FastAPI

    from cinderblock.runtime.wiring import Core

LOG = logging.getLogger("cinderblock")
API_ARGV = "CINDERBLOCK_API_ARGV"  # the command line, for each API worker to parse again


def _global_options(parser: argparse.ArgumentParser, late: bool) -> None:
    """The options every command takes. Operators type them after the sub-command too, as with Cinder's
    `cinder-volume --config-file X`: there they land under `late_*` names and are merged in `parse`."""
    prefix, default = ("late_", argparse.SUPPRESS) if late else ("", None)
    parser.add_argument("--config-file", dest=f"{prefix}config_file", action="append",
                        default=default if late else [], help="cinder.conf-style file (repeatable)")
    parser.add_argument("--state-path", dest=f"{prefix}state_path", default=default,
                        help="state directory (default ./cinderblock-data)")
    parser.add_argument("--debug", dest=f"{prefix}debug", action="store_true",
                        default=default if late else False, help="log at DEBUG")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cinderblock", description="Cinder v3 compatible block storage.")
    _global_options(parser, late=False)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = subparsers.add_parser(name, **kwargs)
        _global_options(sub, late=True)
        return sub

    serve = command(commands, "serve", help="embedded mode: API + scheduler + volume services, one process")
    serve.add_argument("--host", dest="listen", help="address to bind (osapi_volume_listen)")
    serve.add_argument("--port", type=int, help="port to bind (osapi_volume_listen_port)")
    api = command(commands, "api", help="the API service (scale-out)")
    api.add_argument("--host", dest="listen")
    api.add_argument("--port", type=int)
    command(commands, "scheduler", help="the scheduler service (scale-out)")
    command(commands, "volume", help="the volume service for every enabled backend (scale-out)")
    db = command(commands, "db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    sync = command(db_commands, "sync", help="create or upgrade the schema (Alembic)")
    sync.add_argument("revision", nargs="?", default="head")
    reset = command(
        db_commands, "reset-active-backend", help="after promoting a replication target to primary in "
        "cinder.conf: make the frozen, stopped service serve its (new) primary again")
    reset.add_argument("--backend-host", required=True, help="host@backend of the volume service")
    reset.add_argument("--enable-replication", action="store_true",
                       help="the new configuration replicates: replication_status enabled (else disabled)")
    reset.add_argument("--active-backend-id", default=None,
                       help="the target that serves after the reset (default: the configured primary)")
    reset.add_argument("--force", action="store_true", help="do not check that the service is stopped")
    down = command(db_commands, "downgrade", help="downgrade the schema to a revision")
    down.add_argument("revision")
    policy = command(commands, "policy", help="authorisation rules")
    command(policy.add_subparsers(dest="policy_command", required=True), "defaults",
            help="print the default policy rules (YAML, for [oslo_policy] policy_file)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    conf = build_config(config_files=args.config_file)
    overrides = {"state_path": args.state_path, "osapi_volume_listen": getattr(args, "listen", None),
                 "osapi_volume_listen_port": getattr(args, "port", None)}
    settings = load_settings(conf, driver_options, **overrides)
    from cinderblock.api.auth import authenticator
    from cinderblock.api.policy import Policy

    # A bad policy file or [keystone_authtoken] section stops the start here, with its option named.
    Policy.from_config_files(settings.config_files)
    authenticator(settings)
    return settings


def parse(argv: list[str] | None) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    # Global options given after a sub-command add to (files) or override (the rest) those before it.
    args.config_file = args.config_file + list(vars(args).pop("late_config_file", []))
    late_state_path = vars(args).pop("late_state_path", None)
    args.state_path = late_state_path if late_state_path is not None else args.state_path
    args.debug = args.debug or bool(vars(args).pop("late_debug", False))
    return args


def settings_of(args: argparse.Namespace) -> Settings:
    """Settings from parsed arguments (API workers rebuild theirs with this, see create_app)."""
    return _settings(args)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _serve_http(settings: Settings, app: object, workers: int = 1, grace: int = 5) -> None:
    """Until SIGTERM/SIGINT; then open requests get `grace` seconds."""
    import uvicorn

    # uvicorn shuts down on SIGTERM/SIGINT and then raises the signal again for the handler it
    # found: make that a no-op so our own shutdown (services, database) still runs afterwards.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)

    # Several workers: app is an import string of a factory; uvicorn's supervisor restarts a worker
    # that dies (kill -9) and stops them all on SIGTERM.
    uvicorn.run(app, host=settings.listen, port=settings.port, log_level="warning", access_log=False,  # type: ignore[arg-type]
                timeout_graceful_shutdown=grace, workers=workers if workers > 1 else None, factory=workers > 1)


def _serve_api_workers(settings: Settings, argv: list[str]) -> None:
    """uvicorn's supervisor here, the app in each worker: this process never builds it (nor imports
    it: workers start sooner on a small machine)."""
    os.environ[API_ARGV] = json.dumps(argv)  # read by create_app
    _serve_http(settings, "cinderblock.cli:create_app", workers=settings.api_workers)


def create_app() -> FastAPI:
    """uvicorn's factory in each API worker process: it parses the command line again, so every worker
    reads the same configuration as the command, and builds its own database engine and broker
    connection (nothing is shared across processes)."""
    from cinderblock.runtime import asgi, wiring

    args = parse(json.loads(os.environ[API_ARGV]))
    configure_logging(args.debug)
    return asgi.build(wiring.build_core(settings_of(args)))


def _db(core: Core, args: argparse.Namespace) -> int:
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from cinderblock.db import migrate
    from cinderblock.model.errors import CinderblockError

    try:
        if args.db_command == "reset-active-backend":
            return _reset_active_backend(core, args)
        if args.db_command == "sync":
            migrate.sync(core.db, args.revision)
        else:
            migrate.downgrade(core.db, args.revision)
    except CommandError as error:  # unknown revision, or a downgrade past what exists
        print(f"cinderblock: db {args.db_command} {args.revision}: {error}", file=sys.stderr)
        return 1
    except CinderblockError as error:  # database away, or the command's own refusal
        print(f"cinderblock: db {args.db_command}: {error.message}", file=sys.stderr)
        return 1
    except OperationalError as error:
        print(f"cinderblock: db {args.db_command}: the database refused: {error.orig}", file=sys.stderr)
        return 1
    finally:
        core.close()
    return 0


def _reset_active_backend(core: Core, args: argparse.Namespace) -> int:
    import datetime as dt

    from cinderblock.db.repos import services
    from cinderblock.db.tables import utcnow

    host = args.backend_host.partition("#")[0]
    stopped_before = None if args.force else utcnow() - dt.timedelta(seconds=core.settings.service_down_time)
    with core.db.write() as session:
        row = services.reset_active_backend(session, host, args.enable_replication, args.active_backend_id,
                                            stopped_before)
        print(f"{row.host}: active backend {row.active_backend_id or 'the configured primary'}, replication "
              f"{row.replication_status}, enabled; still frozen: start the service, then `cinder thaw-host {host}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    configure_logging(args.debug)
    if args.command == "policy":
        from cinderblock.api.policy import defaults_yaml

        print(defaults_yaml(), end="")
        return 0
    try:
        settings = _settings(args)
    except ConfigError as error:
        print(f"cinderblock: configuration error: {error}", file=sys.stderr)
        return 2
    os.makedirs(settings.state_path, exist_ok=True)
    if args.command in ("serve", "api"):
        from cinderblock.api.auth import check_identity

        # Logs what keeps Keystone from validating tokens (and goes on: requests answer 503 meanwhile).
        check_identity(settings)
    if args.command == "api" and settings.api_workers > 1:
        _serve_api_workers(settings, argv)
        return 0
    from cinderblock.rpc.transport import ListenerError
    from cinderblock.runtime import asgi, wiring

    core = wiring.build_core(settings, service=args.command in ("scheduler", "volume"))
    if args.command == "db":
        return _db(core, args)
    if args.command == "api":
        _serve_http(settings, asgi.build(core))
        return 0
    try:
        return _run_services(args.command, settings, core)
    except ListenerError as error:
        LOG.error("cinderblock %s cannot take messages, so it does not run: %s", args.command, error)
        core.close()
        return 1


def _run_services(command: str, settings: Settings, core: Core) -> int:
    """serve, scheduler or volume: start, run until SIGTERM/SIGINT, stop within graceful_shutdown_timeout."""
    from cinderblock.runtime import embedded, service
    from cinderblock.runtime.shutdown import Shutdown

    timeout = settings.graceful_shutdown_timeout
    if command == "serve":
        running = embedded.start_embedded(core)
        stopping = Shutdown(f"cinderblock serve ({settings.host})", timeout, running.in_progress)
        LOG.info("cinderblock serving on http://%s:%d/v3 (state in %s)", settings.listen, settings.port,
                 settings.state_path)
        grace = min(5, timeout // 2) if timeout else 5  # open HTTP requests first, then the services
        try:
            _serve_http(settings, running.app, grace=grace)
        finally:
            stopping.begin(timeout - grace if timeout else None)
            running.stop()
            stopping.finished()
        return 0
    heartbeat = service.Heartbeat(core.db, settings.report_interval)
    if command == "scheduler":
        server = service.start_scheduler(settings, core.db, core.transport, heartbeat)
        stopping = Shutdown(f"cinder-scheduler {settings.host}", timeout)
        heartbeat.start()
        stopping.wait()
        stopping.begin()
        heartbeat.stop()
        server.stop()
    else:
        from cinderblock.coordination import make_locks

        locks = make_locks(settings.coordination_url, settings.host)
        locks.start()
        started = service.start_volume_services(settings, core.db, core.transport, heartbeat, locks)
        stopping = Shutdown(f"cinder-volume {settings.host}", timeout,
                            lambda: [ident for running in started for ident in running.in_progress()])
        heartbeat.start()
        stopping.wait()
        stopping.begin()
        heartbeat.stop()
        for volume_service in started:
            volume_service.stop()
        locks.stop()
    core.close()
    stopping.finished()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
