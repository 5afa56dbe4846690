"""Filters and weighers by the names `scheduler_default_filters` / `scheduler_default_weighers` use."""
from __future__ import annotations

from cinderblock.scheduler.filters.availability_zone import AvailabilityZoneFilter
from cinderblock.scheduler.filters.base import PoolFilter
from cinderblock.scheduler.filters.capabilities import CapabilitiesFilter
from cinderblock.scheduler.filters.capacity import CapacityFilter
from cinderblock.scheduler.filters.ignore_attempted import IgnoreAttemptedHostsFilter
from cinderblock.scheduler.filters.required_backend import RequiredBackendFilter
from cinderblock.scheduler.weighers.allocated_capacity import AllocatedCapacityWeigher
from cinderblock.scheduler.weighers.base import PoolWeigher
from cinderblock.scheduler.weighers.capacity import CapacityWeigher
from cinderblock.scheduler.weighers.volume_number import VolumeNumberWeigher

FILTERS: dict[str, type[PoolFilter]] = {cls.name: cls for cls in (
    AvailabilityZoneFilter, CapacityFilter, CapabilitiesFilter, RequiredBackendFilter, IgnoreAttemptedHostsFilter)}
WEIGHERS: dict[str, type[PoolWeigher]] = {cls.name: cls for cls in (
    CapacityWeigher, AllocatedCapacityWeigher, VolumeNumberWeigher)}
# Correctness, not policy: always run first, whatever the configuration lists.
MANDATORY_FILTERS = ("RequiredBackendFilter", "IgnoreAttemptedHostsFilter")
