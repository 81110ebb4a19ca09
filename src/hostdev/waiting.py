"""Waiting in asyncio without losing a cancellation on Python 3.11.

On 3.11 `asyncio.wait_for` runs what it waits for in a task of its own, and a cancellation of
the caller that lands in the loop turn in which that task finishes is dropped: wait_for
returns the result instead (fixed in 3.12). A background loop that waits for an event then
goes on after its stop() cancelled it, and stop() waits for ever (`make bench` hung so in a
daemon's shutdown). So hostdev never calls wait_for (ruff bans it): `wait_event` waits in the
caller's own task under `asyncio.timeout`, and `cancel_and_wait` stops a background task
without swallowing a cancellation of its caller.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until event is set (True) or timeout seconds have passed (False; None: no limit)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(task: asyncio.Task[Any], *ignored: type[BaseException]) -> None:
    """Cancel task and wait until it has ended. Its CancelledError and the `ignored` errors are
    dropped, any other error is raised; only a cancellation of the caller while it waits
    raises CancelledError here."""
    task.cancel()
    await asyncio.wait({task})  # unlike `await task`, never mistakes the task's end for ours
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, ignored):
        raise error
