"""Pool filters, one class per module, registered by name in placement/registry.py."""
