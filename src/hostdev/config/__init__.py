"""Configuration: what hostdev serves and under which names (schema, loading, patterns)."""

from hostdev.config.loader import load_config
from hostdev.config.model import (
    DEFAULT_CONFIG,
    DEFAULT_PREFIX,
    Config,
    ResourceOptions,
    ResourceSpec,
    Selector,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_PREFIX",
    "Config",
    "ResourceOptions",
    "ResourceSpec",
    "Selector",
    "load_config",
]
