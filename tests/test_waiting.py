"""hostdev.waiting: event waits and task stops that never lose a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from hostdev.waiting import cancel_and_wait, wait_event


async def test_wait_event_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.001) is False
    event.set()
    assert await wait_event(event, 600) is True
    assert await wait_event(event, None) is True


async def test_a_cancel_that_lands_as_the_event_is_set_is_kept() -> None:
    """asyncio.wait_for on 3.11 returned True here and the waiter went on as if not cancelled."""
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_event(event, 600))
    await asyncio.sleep(0)  # one loop turn: the waiter now waits
    event.set()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def _fails(error: BaseException, started: asyncio.Event) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        raise error


@pytest.mark.parametrize(
    ("error", "ignored", "raised"),
    [
        (ValueError("gone"), (ValueError,), None),
        (ValueError("gone"), (), ValueError),
        (OSError("socket"), (ValueError, OSError), None),
    ],
    ids=["ignored-error", "other-error-raised", "one-of-several-ignored"],
)
async def test_cancel_and_wait_drops_only_the_errors_it_is_told_to(
    error: BaseException, ignored: tuple[type[BaseException], ...], raised: type | None
) -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_fails(error, started))
    await started.wait()
    if raised is None:
        await cancel_and_wait(task, *ignored)
    else:
        with pytest.raises(raised):
            await cancel_and_wait(task, *ignored)
    assert task.done()


async def _waits_for_ever(started: asyncio.Event) -> None:
    started.set()
    await asyncio.Event().wait()


async def test_cancel_and_wait_ends_a_waiting_task_quietly() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_waits_for_ever(started))
    await started.wait()
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_the_callers_own_cancellation_goes_through() -> None:
    """A stop() that is itself cancelled while the task winds down is cancelled, not done."""
    release = asyncio.Event()
    winding_down = asyncio.Event()

    started = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await _waits_for_ever(started)
        finally:
            winding_down.set()
            await release.wait()

    task = asyncio.create_task(slow_to_stop())
    await started.wait()
    stopper = asyncio.create_task(cancel_and_wait(task))
    await winding_down.wait()
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    release.set()
    await asyncio.wait({task})
    assert task.cancelled()
