"""Flow control a task declares (R17): its priority, a rate limit and a concurrency limit,
each optionally per key computed from the payload. The key is computed where the job is
created (``Client.enqueue``: API, CLI, scheduler, SDK), from the validated payload, and stored
on the job with its limit, so the claim script enforces it without knowing any task."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from jobq.errors import ConfigError, InvalidPayload
from jobq.keys import FLOW_KEY_MAX, PRIORITY_MAX, PRIORITY_MIN, QueueKeys, flow_name

KeyFunction = Callable[[Any], str | None]  # payload -> key (a tenant, a host); None: no limit
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``starts`` jobs started in any window of ``per_s`` seconds (sliding)."""

    starts: int
    per_s: float = 1.0

    def __post_init__(self) -> None:
        if self.starts < 1 or self.per_s <= 0 or self.per_ms < 1:
            raise ConfigError(f"rate limit {self.starts}/{self.per_s}s: need at least 1 start "
                              "per period of at least 1 ms")

    @property
    def per_ms(self) -> int:
        return round(self.per_s * 1000)

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``10/1s``, ``100/60s``, ``5/500ms``, ``1000/1m`` or ``1000/1h``."""
        match = _RATE.match(text)
        if match is None:
            raise ConfigError(f"rate limit {text!r}: write <starts>/<period><ms|s|m|h>, "
                              "e.g. 10/1s")
        amount = float(match.group(2) or 1)
        return cls(int(match.group(1)), amount * _UNIT_MS[match.group(3)] / 1000)


def parse_queue_rates(entries: list[str]) -> dict[str, RateLimit]:
    """``JOBQ_QUEUE_RATE_LIMITS`` entries ``<queue>=<starts>/<period>`` by queue."""
    rates: dict[str, RateLimit] = {}
    for entry in entries:
        queue, sep, rate = entry.partition("=")
        if not sep or not queue.strip():
            raise ConfigError(f"queue rate limit {entry!r}: write <queue>=<starts>/<period>")
        rates[queue.strip()] = RateLimit.parse(rate)
    return rates


def check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not (
            PRIORITY_MIN <= priority <= PRIORITY_MAX):
        raise InvalidPayload(f"priority must be a whole number from {PRIORITY_MIN} to "
                             f"{PRIORITY_MAX}")
    return priority


@dataclass(frozen=True, slots=True)
class FlowFields:
    """What a job carries of its task's limits (the flow fields of lua/lib/new_job.lua)."""

    rate_key: str = ""
    rate_max: int = 0
    rate_per_ms: int = 0
    concurrency_key: str = ""
    concurrency_max: int = 0


NO_LIMITS = FlowFields()


def flow_key(
    task_name: str, what: str, key_of: KeyFunction | None, model: BaseModel
) -> str | None:
    """The key one job counts against: the task's key function of its payload (None: this
    job is not limited), or the task name (one limit for all its jobs). Bad keys are the
    payload's fault: InvalidPayload."""
    if key_of is None:
        return flow_name("task", task_name)
    try:
        key = key_of(model)
    except Exception as exc:
        raise InvalidPayload(f"task {task_name!r}: its {what} key cannot be computed from "
                             f"this payload: {exc!r}") from None
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > FLOW_KEY_MAX:
        raise InvalidPayload(f"task {task_name!r}: its {what} key must be a non-empty string "
                             f"of at most {FLOW_KEY_MAX} characters")
    return flow_name("key", key)


def flow_fields(
    q: QueueKeys, task_name: str, model: BaseModel, rate: RateLimit | None,
    rate_key: KeyFunction | None, concurrency: int | None, concurrency_key: KeyFunction | None,
) -> FlowFields:
    if rate is None and concurrency is None:
        return NO_LIMITS
    fields = NO_LIMITS
    rate_on = rate and flow_key(task_name, "rate", rate_key, model)
    if rate is not None and rate_on:
        fields = FlowFields(q.rate_log(rate_on), rate.starts, rate.per_ms)
    concurrency_on = concurrency and flow_key(task_name, "concurrency", concurrency_key, model)
    if concurrency is not None and concurrency_on:
        fields = FlowFields(fields.rate_key, fields.rate_max, fields.rate_per_ms,
                            q.concurrency(concurrency_on), concurrency)
    return fields
