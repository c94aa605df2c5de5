"""``jobq scheduler`` stops on SIGTERM through its stop flag, also while it is backing off
through a Redis outage (pauses of up to 30 s): no wait of its loops outlasts the stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from fixtures import Proc, events, eventually, process_env

from jobq.embedded import free_port
from jobq.settings import Settings


async def test_sigterm_during_an_outage_backoff_exits_at_once_without_cancelling(
    spawn: Callable[..., Proc], settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml.safe_dump({"schedules": [
        {"name": "tick", "type": "noop", "every": "1s", "payload": {"n": 1}}]}))
    env = process_env(settings, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nobody there
    proc = spawn(["scheduler", "--file", str(path)], env)

    async def backing_off() -> bool:
        return len(events(proc, "schedule.redis_unavailable")) >= 4  # pauses grow past 0.4 s

    await eventually(backing_off, what="the scheduler to back off through the outage")
    proc.terminate()
    assert proc.wait(10) == 0
    assert events(proc, "scheduler.stopped")
    # The loop ended on its flag: it was neither slow to stop nor needed cancelling.
    assert not events(proc, "scheduler.stop_slow")
    assert not events(proc, "schedule.error")
