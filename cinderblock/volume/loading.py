"""Driver classes by the class path a backend's `volume_driver` names (short names resolved by config).

config/settings.py reads each backend's driver options through `driver_options` (passed in at start-up,
so a driver that cannot load stops the start with its option named); the volume service builds its
driver with `load_driver_class`."""
from __future__ import annotations

import importlib
from collections.abc import Sequence

from oslo_config import cfg

from cinderblock.config.settings import ConfigError
from cinderblock.volume.driver import VolumeDriver


def load_driver_class(path: str) -> type[VolumeDriver]:
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        driver_class = getattr(module, class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"volume_driver {path!r} cannot be loaded: {exc}") from exc
    if not (isinstance(driver_class, type) and issubclass(driver_class, VolumeDriver)):
        raise ConfigError(f"volume_driver {path!r} is not a cinderblock VolumeDriver")
    return driver_class


def driver_options(path: str) -> Sequence[cfg.Opt]:
    """The options the driver declares (registered per backend section by config)."""
    return load_driver_class(path).OPTIONS
