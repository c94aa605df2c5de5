"""Messages between the worker and its children: one JSON object per line, ``op`` says which.

parent -> child: ``init`` (settings, sys.path), ``job``, ``reply`` (to a ``call``), ``cancel``.
child -> parent: ``ready``, ``call`` (progress, reserve), ``done``.
Closing the child's stdin asks it to exit once idle.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

MAX_LINE = 256 * 1024 * 1024  # a line is one message; results can be large

# Why a child is asked to stop its job: the soft timeout, a cancel request, or shutdown.
TIMEOUT, CANCEL, STOP = "timeout", "cancel", "stop"


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> dict[str, Any]:
    message = orjson.loads(line)
    if not isinstance(message, dict) or "op" not in message:
        raise ValueError(f"not a message: {line[:200]!r}")
    return message


def rss_bytes() -> int:
    """This process's resident memory now (not its peak): what the kernel would reclaim."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # no /proc (macOS): the peak is the best there is

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
