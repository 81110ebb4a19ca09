"""Configuration: what hostdev serves and under which names (schema, loading, patterns).

`load_config` imports the pydantic schema on first use, so commands and a `hostdev serve`
without a config file start without paying for it.
"""

from __future__ import annotations

from pathlib import Path

from hostdev.config.model import (
    DEFAULT_CONFIG,
    DEFAULT_PREFIX,
    Config,
    KubeVirtEntries,
    ResourceOptions,
    ResourceSpec,
    Selector,
)


def load_config(path: str | Path, *, kubevirt_entries: KubeVirtEntries | None = None) -> Config:
    """Read, validate and convert one config file (raises ConfigError)."""
    from hostdev.config import loader

    return loader.load_config(path, kubevirt_entries=kubevirt_entries)


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_PREFIX",
    "Config",
    "ResourceOptions",
    "ResourceSpec",
    "Selector",
    "load_config",
]
