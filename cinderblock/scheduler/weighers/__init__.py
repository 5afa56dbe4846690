"""Pool weighers, one class per module, registered by name in scheduler/registry.py."""
