"""Detects asyncio tasks a test left running (used by the test suite's autouse fixtures)."""

from __future__ import annotations

import asyncio

DEFAULT_GRACE_S = 2.0


async def leaked_tasks(
    before: set[asyncio.Task[object]], grace_s: float = DEFAULT_GRACE_S
) -> list[str]:
    """Names of tasks started since `before` that do not end within grace_s; they are cancelled.

    Libraries such as gRPC finish their own per-call tasks just after a server stops, so tasks
    get a bounded moment to end by themselves; whatever still runs after that is a leak.
    """
    others = asyncio.all_tasks() - before - {asyncio.current_task()}
    if not others:
        return []
    _, leaked = await asyncio.wait(others, timeout=grace_s)
    for task in leaked:
        task.cancel()
    await asyncio.gather(*leaked, return_exceptions=True)
    return sorted(task.get_name() for task in leaked)
