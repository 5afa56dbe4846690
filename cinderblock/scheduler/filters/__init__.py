"""Pool filters, one class per module, registered by name in scheduler/registry.py."""
