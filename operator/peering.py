"""Whether this operator process may act now, by kopf's own peering rule.

kopf pauses its watch streams while a live peer in the KopfPeering has a higher priority (or the
same one), but the operator's per-object loops (schedule firing, autoscaling) are its own tasks,
not kopf daemons: daemons and timers make kopf put a finalizer on every object they serve, and
that finalizer blocks deletion whenever no operator runs (a ``helm uninstall`` removes the
operator together with the worker Deployments). So the loops ask this mirror of kopf's rule
before acting. Acting twice would still be harmless (every firing is keyed by its bucket), only
wasteful.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jobq.logs import get_logger
from jobq.operator.kube import Kube

POLL_S = 1.0

log = get_logger("jobq.operator.peering")


def is_leader(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule on a KopfPeering's ``status``: act only once registered there, and while no
    other live peer has a priority at least as high (equal priorities pause everyone)."""

    def alive(info: Any) -> bool:
        if not isinstance(info, Mapping):
            return False
        try:
            seen = datetime.fromisoformat(str(info["lastseen"]))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
        except (KeyError, ValueError, TypeError):
            return False
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        return bool(seen + lifetime > now)

    if not alive(peers.get(identity)):
        return False
    for other, info in peers.items():
        if other == identity or not alive(info):
            continue
        try:
            if int(info.get("priority", 0)) >= priority:
                return False
        except (TypeError, ValueError):
            continue
    return True


class Peering:
    """Polls the KopfPeering; ``wait_active`` returns once this process may act."""

    def __init__(
        self, kube: Kube | None, namespace: str | None, name: str, identity: str, priority: int
    ) -> None:
        self.kube = kube  # None: standalone, always active
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.priority = priority
        self._active = asyncio.Event()
        self._verdict: tuple[bool, str] | None = None  # None until the first look
        if kube is None:
            self._active.set()

    @property
    def active(self) -> bool:
        return self._active.is_set()

    async def wait_active(self) -> None:
        await self._active.wait()

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

    async def run(self) -> None:
        if self.kube is None:
            return
        failing = False
        while True:
            try:
                body = await self.kube.get_peering(self.namespace, self.name)
            except Exception as exc:  # the API away: keep the last verdict, retry soon
                if not failing:
                    log.warning("operator.peering_unreadable", error=str(exc))
                failing = True
            else:
                failing = False
                if body is None:
                    self._set(False, f"no KopfPeering {self.name!r}")
                else:
                    peers = body.get("status") or {}
                    if is_leader(peers, self.identity, self.priority, datetime.now(UTC)):
                        self._set(True, "")
                    elif self.identity in peers:
                        self._set(False, "another operator has priority")
                    else:
                        self._set(False, "not registered in the peering yet")
            await asyncio.sleep(POLL_S)
