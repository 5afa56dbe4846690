"""Frozen settings built once from a ConfigOpts. The only module that reads option values."""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from cinderblock.config import options

# The oslo.config options a volume_driver path declares (its class's OPTIONS). Passed in by the
# caller (volume/loading.py): config reads the options of drivers it does not import.
DriverOptionsOf = Callable[[str], Sequence[cfg.Opt]]


class ConfigError(Exception):
    """The configuration cannot work; the message says which option and why."""


class DriverOptions(Mapping[str, Any]):
    """Resolved options of one backend (section → [backend_defaults] → default), read-only."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class BackendSettings:
    name: str
    service_host: str  # host@backend
    availability_zone: str
    volume_driver: str  # class path, short names resolved (options.DRIVER_ALIASES)
    options: DriverOptions


@dataclass(frozen=True)
class QuotaDefaults:
    volumes: int
    snapshots: int
    gigabytes: int
    backups: int
    backup_gigabytes: int
    groups: int
    per_volume_gigabytes: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SchedulerSettings:
    """How the filter scheduler places volumes (Cinder's option names in config/options.py)."""

    filters: tuple[str, ...] = ("AvailabilityZoneFilter", "CapacityFilter", "CapabilitiesFilter")
    weighers: tuple[str, ...] = ("CapacityWeigher",)
    capacity_weight_multiplier: float = 1.0
    allocated_capacity_weight_multiplier: float = -1.0
    volume_number_multiplier: float = -1.0
    max_attempts: int = 3
    pool_max_age: float = 180.0
    message_ttl: int = 2592000


@dataclass(frozen=True)
class Settings:
    state_path: str
    host: str
    database_url: str
    transport_url: str
    auth_strategy: str
    listen: str
    port: int
    api_workers: int
    max_limit: int
    api_threads: int
    default_volume_type: str
    storage_availability_zone: str
    default_availability_zone: str
    service_down_time: int
    report_interval: int
    stats_interval: int
    volume_workers_per_backend: int
    public_endpoint: str | None
    project_id_regex: str
    coordination_url: str | None
    quotas: QuotaDefaults
    backends: tuple[BackendSettings, ...] = field(default_factory=tuple)
    # The files read, so libraries with options of their own (oslo.messaging) can read them too.
    config_files: tuple[str, ...] = ()
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    max_request_body_size: int = 114688  # osapi_max_request_body_size
    max_metadata_items: int = 128  # quota_metadata_items
    periodic_interval: int = 60
    transient_state_timeout: int = 600
    graceful_shutdown_timeout: int = 60


def _is_set(conf: cfg.ConfigOpts, name: str, group: str) -> bool:
    try:
        location = conf.get_location(name, group)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return False
    return location is not None and location.location != cfg.Locations.opt_default


def _resolve(conf: cfg.ConfigOpts, name: str, group: str) -> Any:
    """Section first, then [backend_defaults], then the option's default."""
    if _is_set(conf, name, group):
        return conf[group][name]
    return conf["backend_defaults"][name]


def _register_backend(conf: cfg.ConfigOpts, group: str, opts: list[cfg.Opt]) -> None:
    for target in (group, "backend_defaults"):
        for opt in opts:
            try:
                conf.register_opt(opt, group=target)
            except cfg.DuplicateOptError as exc:
                raise ConfigError(f"driver option {opt.name!r} clashes with another option: {exc}") from exc


def _backend_settings(conf: cfg.ConfigOpts, name: str, driver_options: DriverOptionsOf) -> BackendSettings:
    _register_backend(conf, name, options.BACKEND_OPTS)
    path = _resolve(conf, "volume_driver", name)
    path = options.DRIVER_ALIASES.get(path, path)
    own_options = list(driver_options(path))
    _register_backend(conf, name, own_options)
    values = {opt.dest: _resolve(conf, opt.dest, name) for opt in [*options.BACKEND_OPTS, *own_options]}
    values["volume_backend_name"] = values["volume_backend_name"] or name
    ratio = str(values["max_over_subscription_ratio"])
    if ratio != "auto":
        try:
            if float(ratio) < 1.0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"[{name}] max_over_subscription_ratio must be 'auto' or a number ≥ 1, "
                              f"not {ratio!r}") from None
    host = values["backend_host"] or conf.host
    zone = values["backend_availability_zone"] or conf.storage_availability_zone
    return BackendSettings(name, f"{host}@{name}", zone, path, DriverOptions(values))


def _scheduler_settings(conf: cfg.ConfigOpts) -> SchedulerSettings:
    for option, known in (("scheduler_default_filters", options.SCHEDULER_FILTER_NAMES),
                          ("scheduler_default_weighers", options.SCHEDULER_WEIGHER_NAMES)):
        unknown = [name for name in conf[option] or [] if name not in known]
        if unknown:
            raise ConfigError(f"{option} names unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return SchedulerSettings(
        filters=tuple(conf.scheduler_default_filters or ()), weighers=tuple(conf.scheduler_default_weighers or ()),
        capacity_weight_multiplier=conf.capacity_weight_multiplier,
        allocated_capacity_weight_multiplier=conf.allocated_capacity_weight_multiplier,
        volume_number_multiplier=conf.volume_number_multiplier, max_attempts=conf.scheduler_max_attempts,
        # Several reports may be lost before a pool counts as stale.
        pool_max_age=float(conf.scheduler_pool_max_age or 3 * conf.backend_stats_polling_interval),
        message_ttl=conf.message_ttl,
    )


def build_config(args: list[str] | None = None, config_files: list[str] | None = None) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    options.register_global_options(conf)
    try:
        conf(args=args or [], project="cinderblock", default_config_files=config_files or [],
             validate_default_values=True)
    except cfg.Error as exc:
        raise ConfigError(str(exc)) from exc
    return conf


def _check_noauth_listen(conf: cfg.ConfigOpts) -> None:
    """noauth believes any token: without keystone, only this machine may reach the API by default."""
    if conf.auth_strategy != "noauth" or conf.noauth_allow_remote:
        return
    address = conf.osapi_volume_listen
    try:
        loopback = ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        loopback = address == "localhost"
    if not loopback:
        raise ConfigError(f"auth_strategy = noauth trusts whatever identity a token names, so it listens on "
                          f"loopback only, not osapi_volume_listen = {address!r}: use auth_strategy = keystone, "
                          f"or set noauth_allow_remote = true to accept the risk.")


def load_settings(conf: cfg.ConfigOpts, driver_options: DriverOptionsOf, **overrides: Any) -> Settings:
    """Read every option once. `driver_options` names the options of a volume_driver (raising
    ConfigError when it cannot load); `overrides` replace option values (command-line flags)."""
    for key, value in overrides.items():
        if value is not None:
            group = "database" if key == "connection" else None
            conf.set_override(key, value, group=group)
    try:
        state_path = os.path.abspath(conf.state_path)
        database_url = conf.database.connection or f"sqlite:///{os.path.join(state_path, 'cinderblock.sqlite')}"
        backends = conf.enabled_backends
        if backends is None:
            conf.register_opts(options.BACKEND_OPTS, group="local")
            backends = ["local"]
        if len(set(backends)) != len(backends):
            raise ConfigError(f"enabled_backends lists a backend twice: {backends}")
        backend_settings = tuple(_backend_settings(conf, name, driver_options) for name in backends)
        quotas = QuotaDefaults(
            volumes=conf.quota_volumes, snapshots=conf.quota_snapshots, gigabytes=conf.quota_gigabytes,
            backups=conf.quota_backups, backup_gigabytes=conf.quota_backup_gigabytes,
            groups=conf.quota_groups, per_volume_gigabytes=conf.per_volume_size_limit,
        )
        _check_noauth_listen(conf)
        return Settings(
            state_path=state_path, host=conf.host, database_url=database_url,
            transport_url=conf.transport_url or "inprocess://", auth_strategy=conf.auth_strategy,
            listen=conf.osapi_volume_listen, port=conf.osapi_volume_listen_port,
            api_workers=conf.osapi_volume_workers, max_limit=conf.osapi_max_limit,
            api_threads=conf.api_thread_pool_size,
            default_volume_type=conf.default_volume_type,
            storage_availability_zone=conf.storage_availability_zone,
            default_availability_zone=conf.default_availability_zone or conf.storage_availability_zone,
            service_down_time=conf.service_down_time, report_interval=conf.report_interval,
            stats_interval=conf.backend_stats_polling_interval,
            volume_workers_per_backend=conf.volume_workers_per_backend,
            public_endpoint=conf.public_endpoint, project_id_regex=conf.project_id_regex,
            coordination_url=conf.coordination.backend_url, quotas=quotas,
            backends=backend_settings, config_files=tuple(conf.config_file or ()),
            scheduler=_scheduler_settings(conf), max_request_body_size=conf.osapi_max_request_body_size,
            max_metadata_items=conf.quota_metadata_items, periodic_interval=conf.periodic_interval,
            transient_state_timeout=conf.transient_state_timeout,
            graceful_shutdown_timeout=conf.graceful_shutdown_timeout,
        )
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
