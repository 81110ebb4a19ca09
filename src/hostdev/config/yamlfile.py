"""Reading a YAML config file: one-line ConfigErrors, and a mapping key given twice refused.

PyYAML keeps the last of two equal keys without a word, so `exclude: [...]` followed later by
`exclude: []` would silently drop the exclusions. Keys brought in by a `<<` merge may still be
overridden, as YAML intends.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from hostdev.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that raises a ConstructorError on a key repeated in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Check the mapping's own keys, then build it as SafeLoader does."""
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = first_lines.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first given at line {first})",
                    key_node.start_mark,
                )
            first_lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml_file(path: str | Path) -> Any:
    """The document in a UTF-8 YAML (or JSON) file, None for an empty one; ConfigError(file,
    "", reason) when it cannot be read or parsed."""
    file = str(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(file, "", f"cannot read the file: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(file, "", "not UTF-8 text") from err
    try:
        # UniqueKeyLoader is a SafeLoader: it builds no arbitrary Python objects.
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(file, "", _yaml_problem(err)) from err


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: "invalid YAML: line N: what is wrong"."""
    mark = getattr(err, "problem_mark", None)
    if mark is None:  # a reader error (a control character): its first line says which
        return f"invalid YAML: {str(err).splitlines()[0]}"
    problem = getattr(err, "problem", None) or "syntax error"
    return f"invalid YAML: line {mark.line + 1}: {problem}"
