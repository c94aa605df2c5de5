"""The operator's copy of kopf's peering rule, pinned to the installed kopf.

``jobq.operator.peering`` judges the KopfPeering by a copy of kopf's private rule (when kopf
pauses an operator). Here the installed kopf's own ``process_peering_event`` runs on the same
peering states, and the copy must agree with it on every one: a kopf upgrade that changes the
rule, or moves the function, fails this test instead of silently letting two operators act.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kopf._cogs.aiokits.aiotoggles import Toggle
from kopf._cogs.configs.configuration import OperatorSettings
from kopf._cogs.structs.references import Resource
from kopf._core.engines.peering import process_peering_event

from jobq.operator.peering import Peering, is_leader, pausing_peers

pytestmark = pytest.mark.any_server

ME = "me"
FRESH = 5.0  # seconds since a peer was last seen: alive (kopf's default lifetime is 60 s)
OLD = 120.0  # dead


def peer(priority: int | None = None, age_s: float | None = FRESH, **more: Any) -> dict[str, Any]:
    """A peering entry last seen ``age_s`` ago, stamped now: the suite may run for minutes."""
    entry: dict[str, Any] = dict(more)
    if priority is not None:
        entry["priority"] = priority
    if age_s is not None:
        entry["lastseen"] = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
    return entry


def others() -> dict[str, dict[str, Any]]:
    """The other peers of each case, stamped at the time of the call."""
    return {
        "alone": {},
        "lower": {"low": peer(5)},
        "higher": {"high": peer(20)},
        "same": {"same": peer(10)},
        "higher but dead": {"high": peer(20, OLD)},
        "higher, left (lifetime 0)": {"high": peer(20, lifetime=0)},
        "higher, long lifetime": {"high": peer(20, OLD, lifetime=300)},
        "higher, no lastseen": {"high": peer(20, None)},
        "no priority": {"quiet": peer(None)},
        "higher, extra fields": {"high": peer(20, namespace="x", hostname="h")},
        "lower and dead higher": {"low": peer(5), "high": peer(20, OLD)},
        "same and lower": {"same": peer(10), "low": peer(1)},
        "many lower": {f"low-{i}": peer(i) for i in range(5)},
    }


async def kopf_pauses(status: dict[str, Any], priority: int) -> bool:
    """Whether the installed kopf pauses an operator of ``priority`` on this peering status."""
    settings = OperatorSettings()
    settings.peering.name = "jobq"
    settings.peering.priority = priority
    verdicts = set()
    for paused_before in (False, True):
        conflicts_found = Toggle(paused_before)
        # Already set: kopf then skips its wait for the blocking peers to expire (and the
        # keep-alive PATCH it sends after that wait), so no API server is needed.
        pressure = asyncio.Event()
        pressure.set()
        await process_peering_event(
            raw_event={"type": "MODIFIED",
                       "object": {"metadata": {"name": "jobq"}, "status": status}},
            namespace="ns",
            resource=Resource("kopf.dev", "v1", "kopfpeerings"),
            identity=ME,  # type: ignore[arg-type]
            settings=settings,
            autoclean=False,
            stream_pressure=pressure,
            conflicts_found=conflicts_found,
        )
        verdicts.add(conflicts_found.is_on())
    assert len(verdicts) == 1, "kopf's verdict depended on its previous state"
    return verdicts.pop()


@pytest.mark.parametrize("priority", [10, 0])
@pytest.mark.parametrize("case", sorted(others()))
async def test_the_copied_rule_agrees_with_the_installed_kopf(case: str, priority: int) -> None:
    status = {ME: peer(priority), **others()[case]}
    paused = await kopf_pauses(status, priority)
    now = datetime.now(UTC)
    assert pausing_peers(status, ME, priority, now) is paused
    assert is_leader(status, ME, priority, now) is not paused


async def test_the_cases_cover_both_verdicts() -> None:
    verdicts = {await kopf_pauses({ME: peer(10), **peers}, 10) for peers in others().values()}
    assert verdicts == {True, False}


def test_own_entry_must_be_alive_beyond_kopfs_rule() -> None:
    """kopf never judges its own entry; the copy does, because kopf stops streaming the
    peering while it has paused this process (see jobq.operator.peering)."""
    now = datetime.now(UTC)
    assert not is_leader({}, ME, 10, now)
    assert not is_leader({ME: peer(10, OLD)}, ME, 10, now)
    assert is_leader({ME: peer(10)}, ME, 10, now)
    assert is_leader({ME: peer(10), "junk": "x", "bad": {"lastseen": "?"}}, ME, 10, now)


async def test_peering_follows_the_streamed_object_and_the_clock() -> None:
    peering = Peering(ME, 10, standalone=False, name="jobq")
    assert not peering.active
    peering.judge(datetime.now(UTC))
    assert not peering.active  # nothing streamed yet: kopf has not let this process act
    peering.observe({ME: peer(10, 0)})
    assert peering.active
    assert await peering.wait_active(0.0)
    peering.judge(datetime.now(UTC) + timedelta(seconds=61))  # no keep-alive seen for 61 s
    assert not peering.active
    peering.observe({ME: peer(10, 0), "high": peer(20)})
    assert not peering.active
    peering.observe(None)  # the KopfPeering was deleted
    assert not peering.active
    assert not await peering.wait_active(0.01)


async def test_peering_run_stops_on_its_flag() -> None:
    peering = Peering(ME, 10, standalone=False, name="jobq")
    stop = asyncio.Event()
    task = asyncio.create_task(peering.run(stop))
    await asyncio.sleep(0)
    stop.set()
    async with asyncio.timeout(5):
        await task


def test_standalone_is_always_active() -> None:
    peering = Peering(ME, 10, standalone=True, name="jobq")
    peering.observe(None)
    peering.judge(datetime.now(UTC))
    assert peering.active
