"""Pool weighers, one class per module, registered by name in placement/registry.py."""
