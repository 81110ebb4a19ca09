"""What the serving process leaves out of its memory: asyncio's TLS support.

hostdev serves plain unix sockets (the kubelet's device plugin API) and plain HTTP
(/metrics, /healthz); asyncio imports `ssl` only to offer TLS transports, and `ssl` maps
OpenSSL's libcrypto and libssl: 4.5 MiB of a daemon's resident memory (docs/benchmarks.md).
`hostdev serve` therefore imports asyncio with `ssl` hidden, before anything else imports it.
`ssl` stays importable afterwards: the node-label lookup's HTTPS call loads it through urllib
when a config asks for it. Only asyncio's own TLS transports are off in that process.
"""

from __future__ import annotations

import sys


def import_asyncio_without_tls() -> bool:
    """Import asyncio with its optional `ssl` import failing; False when too late (either is
    already loaded), so nothing changes."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]  # a None entry fails the import
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
    return True
