"""Kubernetes extended resource names: the check the kubelet applies to RegisterRequest.

A device plugin resource must be an extended resource name (`domain/name`): not a native
resource (no `/`, or anything containing `kubernetes.io/`), not starting with `requests.`, and
`requests.<name>` must be a valid qualified name (lower-case DNS subdomain prefix, name part of
at most 63 characters of `[A-Za-z0-9._-]` starting and ending alphanumeric).
"""

from __future__ import annotations

import re

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_MAX_SUBDOMAIN = 253
_MAX_NAME_PART = 63
_NATIVE_PREFIX = "kubernetes.io/"
_QUOTA_PREFIX = "requests."


def extended_resource_name_problem(name: str) -> str | None:
    """Why name is not a valid extended resource name, or None when it is."""
    if "/" not in name:
        return "must have the form domain/name"
    if _NATIVE_PREFIX in name:
        return "the kubernetes.io domain is reserved for native resources"
    if name.startswith(_QUOTA_PREFIX):
        return f"must not start with {_QUOTA_PREFIX!r}"
    return _qualified_name_problem(_QUOTA_PREFIX + name)


def _qualified_name_problem(value: str) -> str | None:
    parts = value.split("/")
    if len(parts) != 2:
        return "must contain exactly one '/'"
    prefix, name = parts
    if len(prefix) > _MAX_SUBDOMAIN or not _DNS1123_SUBDOMAIN.fullmatch(prefix):
        return "the domain must be a lower-case DNS subdomain"
    if not name:
        return "the name after '/' must not be empty"
    if len(name) > _MAX_NAME_PART:
        return f"the name after '/' must be at most {_MAX_NAME_PART} characters"
    if not _QUALIFIED_NAME_PART.fullmatch(name):
        return "the name after '/' must be [A-Za-z0-9._-], starting and ending alphanumeric"
    return None


def is_extended_resource_name(name: str) -> bool:
    """True when the kubelet accepts name as a device plugin resource."""
    return extended_resource_name_problem(name) is None


def invalid_resource_name_message(name: str) -> str:
    """The kubelet's own rejection message for a bad resource name."""
    return f'the ResourceName "{name}" is invalid'
