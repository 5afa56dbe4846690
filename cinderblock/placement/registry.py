"""Filters and weighers by the names `scheduler_default_filters` / `scheduler_default_weighers` use."""
from __future__ import annotations

from cinderblock.placement.filters.availability_zone import AvailabilityZoneFilter
from cinderblock.placement.filters.base import PoolFilter
from cinderblock.placement.filters.capabilities import CapabilitiesFilter
from cinderblock.placement.filters.capacity import CapacityFilter
from cinderblock.placement.filters.ignore_attempted import IgnoreAttemptedHostsFilter
from cinderblock.placement.filters.required_backend import RequiredBackendFilter
from cinderblock.placement.weighers.allocated_capacity import AllocatedCapacityWeigher
from cinderblock.placement.weighers.base import PoolWeigher
from cinderblock.placement.weighers.capacity import CapacityWeigher
from cinderblock.placement.weighers.volume_number import VolumeNumberWeigher

FILTERS: dict[str, type[PoolFilter]] = {cls.name: cls for cls in (
    AvailabilityZoneFilter, CapacityFilter, CapabilitiesFilter, RequiredBackendFilter, IgnoreAttemptedHostsFilter)}
WEIGHERS: dict[str, type[PoolWeigher]] = {cls.name: cls for cls in (
    CapacityWeigher, AllocatedCapacityWeigher, VolumeNumberWeigher)}
# Correctness, not policy: always run first, whatever the configuration lists.
MANDATORY_FILTERS = ("RequiredBackendFilter", "IgnoreAttemptedHostsFilter")
