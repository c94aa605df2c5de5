"""Whether this operator process may act now, by kopf's own peering rule, judged on the
KopfPeering that kopf streams to this process.

kopf pauses its watch streams while a live peer in the KopfPeering has a higher priority (or the
same one), but the operator's per-object loops (schedule firing, autoscaling) are its own tasks,
not kopf daemons: daemons and timers make kopf put a finalizer on every object they serve, and
that finalizer blocks deletion whenever no operator runs (a ``helm uninstall`` removes the
operator together with the worker Deployments). kopf keeps its pause to itself, so the loops ask
this mirror of kopf's rule before acting. Acting twice would still be harmless (every firing is
keyed by its bucket), only wasteful.

The peering object comes from kopf's own watch stream (an ``@kopf.on.event`` handler calls
``observe``); no second client polls it. kopf stops that stream while it has paused this
process, so the event that made it pause may never reach ``observe``: the rule therefore also
asks that this process's own entry be alive. kopf refreshes that entry well within its lifetime
(60 s) while it runs unpaused, so a missed pause lasts at most one lifetime, and once kopf
resumes it re-lists the peering, which brings the verdict up to date.

``is_leader`` copies kopf's rule (``kopf._core.engines.peering.process_peering_event``, private);
tests/test_peering.py runs the installed kopf's own function on the same inputs and fails when
the two disagree, so a kopf upgrade that changes the rule cannot pass unnoticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jobq.logs import get_logger
from jobq.operator.waits import wait_any

REEVALUATE_S = 1.0  # peers expire without any event: judge the last peering against the clock
DEFAULT_LIFETIME_S = 60  # kopf's default for an entry that does not say

log = get_logger("jobq.operator.peering")


def _alive(info: Any, now: datetime) -> bool:
    """kopf's ``Peer``: lifetime 60 s and last seen "now" unless the entry says otherwise."""
    if not isinstance(info, Mapping):
        return False
    try:
        raw = info.get("lastseen")
        seen = now if raw is None else datetime.fromisoformat(str(raw))
        lifetime = timedelta(seconds=int(info.get("lifetime", DEFAULT_LIFETIME_S)))
    except (ValueError, TypeError):
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return bool(seen + lifetime > now)


def pausing_peers(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule: pause while another live peer has a priority at least as high (equal
    priorities pause everyone)."""
    for other, info in peers.items():
        if other == identity or not _alive(info, now):
            continue
        try:
            if int(info.get("priority", 0)) >= priority:
                return True
        except (TypeError, ValueError):
            continue
    return False


def is_leader(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """Act only while kopf has not paused this process: its own entry alive (see the module
    docstring) and no peer pausing it."""
    return _alive(peers.get(identity), now) and not pausing_peers(peers, identity, priority, now)


class Peering:
    """The verdict on the last KopfPeering kopf streamed; ``wait_active`` returns once this
    process may act."""

    def __init__(self, identity: str, priority: int, *, standalone: bool, name: str) -> None:
        self.identity = identity
        self.priority = priority
        self.standalone = standalone  # no peering: always active
        self.name = name
        self._active = asyncio.Event()
        self._verdict: tuple[bool, str] | None = None  # None until the first judgement
        self._peers: Mapping[str, Any] | None = None  # None: no KopfPeering seen (yet)
        self._gone = False
        if standalone:
            self._active.set()

    @property
    def active(self) -> bool:
        return self._active.is_set()

    async def wait_active(self, within_s: float, *also: asyncio.Event) -> bool:
        """Until this process may act (or one of ``also`` is set), ``within_s`` at most."""
        await wait_any([self._active, *also], within_s)
        return self.active

    def observe(self, status: Mapping[str, Any] | None) -> None:
        """The KopfPeering's ``status`` as kopf streamed it; None once it is deleted."""
        if self.standalone:
            return
        self._peers, self._gone = (dict(status), False) if status is not None else (None, True)
        self.judge(datetime.now(UTC))

    def judge(self, now: datetime) -> None:
        if self.standalone:
            return
        if self._peers is None:
            why = f"no KopfPeering {self.name!r}" if self._gone else "waiting for kopf's peering"
            self._set(False, why)
        elif is_leader(self._peers, self.identity, self.priority, now):
            self._set(True, "")
        elif self.identity not in self._peers:
            self._set(False, "not registered in the peering yet")
        elif pausing_peers(self._peers, self.identity, self.priority, now):
            self._set(False, "another operator has priority")
        else:
            self._set(False, "own peering entry expired (kopf paused or the API away)")

    def _set(self, active: bool, why: str) -> None:
        if (active, why) == self._verdict:
            return
        self._verdict = (active, why)
        if active:
            self._active.set()
            log.info("operator.active", identity=self.identity, priority=self.priority)
        else:
            self._active.clear()
            log.info("operator.paused", identity=self.identity, priority=self.priority, reason=why)

    async def run(self, stop: asyncio.Event) -> None:
        """Re-judge the last peering against the clock until ``stop`` is set."""
        while not stop.is_set():
            self.judge(datetime.now(UTC))
            await wait_any([stop], REEVALUATE_S)
