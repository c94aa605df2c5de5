"""Waits for loops that must stop on a flag, not on cancellation alone.

On Python 3.11 a cancellation can be lost: ``asyncio.wait_for`` (which redis-py wraps around
every socket read and write when a socket timeout is set) swallows a cancel that arrives just
as the inner call completes (CPython gh-86296). A loop that only ends when cancelled can then run
forever. So every long-running loop checks a stop event each turn, every wait in it has an upper
bound and returns early when the event is set, and whoever stops a loop waits for it with a
bound too. None of these helpers uses ``wait_for``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; True when it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def settle(tasks: Collection[asyncio.Future[Any]], timeout_s: float) -> set[str]:
    """Wait up to ``timeout_s`` for ``tasks`` to end, never raising their errors; returns the
    names of those still running (the caller decides what to do about them)."""
    pending = {t for t in tasks if not t.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=timeout_s)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise
    return {t.get_name() if isinstance(t, asyncio.Task) else repr(t) for t in pending}


async def stop_tasks(tasks: Collection[asyncio.Task[Any]], timeout_s: float) -> set[str]:
    """Cancel ``tasks`` and wait up to ``timeout_s`` for them; names of those still running."""
    for task in tasks:
        task.cancel()
    return await settle(tasks, timeout_s)
