"""Bounded waits for the operator's loops.

Every loop of the operator stops on a flag it checks each turn, and every wait in it has an
upper bound, so stopping never depends on one cancellation arriving: on Python 3.11
``asyncio.wait_for`` can swallow a cancellation that lands as the awaited operation completes
(CPython gh-86296), and a loop that only stops when cancelled would then run on. ``wait_any``
uses ``asyncio.wait``, which passes a cancellation on and never cancels what it waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def wait_any(events: Iterable[asyncio.Event], within_s: float) -> bool:
    """Until one of ``events`` is set, for ``within_s`` seconds at most; True if one is set."""
    pending = list(events)
    if any(event.is_set() for event in pending):
        return True
    if not pending:
        await asyncio.sleep(max(within_s, 0.0))
        return False
    waiters = [asyncio.ensure_future(event.wait()) for event in pending]
    try:
        done, _ = await asyncio.wait(
            waiters, timeout=max(within_s, 0.0), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
