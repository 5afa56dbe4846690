"""cinderblock: a block-storage control plane speaking the OpenStack Cinder v3 API."""

__version__ = "0.1.0"
