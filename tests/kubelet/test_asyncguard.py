"""The leaked-task guard itself must catch a leak (or it could never fail a test)."""

from __future__ import annotations

import asyncio

from hostdev.testing.asyncguard import leaked_tasks


async def test_guard_reports_and_cancels_a_leaked_task() -> None:
    before = asyncio.all_tasks()
    forever = asyncio.create_task(asyncio.Event().wait(), name="forever")
    assert await leaked_tasks(before, grace_s=0.01) == ["forever"]
    assert forever.cancelled()


async def test_guard_accepts_tasks_that_finish() -> None:
    before = asyncio.all_tasks()
    done = asyncio.Event()
    task = asyncio.create_task(done.wait(), name="finishing")
    done.set()
    assert await leaked_tasks(before, grace_s=1) == []
    assert task.done()
