"""imagelint: make container images small and fast to start."""
__version__ = "0.1.0"
