"""Saying why a child process ended, for the attempt's failure reason."""

from __future__ import annotations

import signal


def describe_exit(code: int, pid: int) -> str:
    """``code`` as asyncio reports it: negative = killed by that signal."""
    if code >= 0:
        return f"the child process (pid {pid}) exited with code {code}"
    number = -code
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    text = f"the child process (pid {pid}) was killed by {name} (signal {number})"
    if number == signal.SIGKILL:
        text += ": killed from outside or by the kernel's OOM killer (memory limit)"
    elif number == signal.SIGSEGV:
        text += ": a segmentation fault (a crash in native code)"
    return text
