"""Attempts that end while Redis is restarting are each recorded once, with the right outcome.

Completions (batched) and failures (one by one) retry through the outage at the same time; each
retry loop must keep its own state, or one loop's success ends another's without its write (a
dropped completion runs again after its lease expires; a failure turns into "worker lost").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fixtures import eventually, metrics_port, process_env

from jobq.client import Client
from jobq.connection import connect
from jobq.embedded import ServerProcess
from jobq.jobs import State
from jobq.settings import Settings
from jobq.tasks import load_registry

JOBS_EACH = 8  # jobs that succeed and jobs that fail, all ending during the outage


async def test_outcomes_ending_during_a_redis_restart_are_recorded_once_and_right(
    redis_server: ServerProcess, settings: Settings, spawn, tmp_path: Path
) -> None:
    own = ServerProcess(redis_server.binary, tmp_path / "redis", appendonly=True).start()
    tasks = [*settings.tasks, "stresstasks"]
    # A lease long enough to outlast the outage: nothing here may be recovered as "worker lost".
    local = settings.model_copy(update={"redis_url": own.url, "tasks": tasks, "lease_s": 10.0})
    worker = spawn(["worker", "--queue", f"stress-queue:{2 * JOBS_EACH}", "--metrics-port", "0"],
                   process_env(local, JOBQ_TEST_EFFECTS_FILE=str(tmp_path / "outbox.txt")), name="worker")
    redis = connect(own.url)
    client = Client(redis, load_registry(tasks), local)
    outbox = tmp_path / "outbox.txt"

    def runs() -> Counter[str]:
        lines = outbox.read_text().splitlines() if outbox.exists() else []
        return Counter(line.split()[0] for line in lines)

    async def all_in(state: State, ids: list[str]) -> bool:
        return all([(await client.get_job(i)).state is state for i in ids])

    try:
        await metrics_port(worker)
        succeed = [(await client.enqueue("finish-or-fail", f"ok-{n}", {"seconds": 2.0})).job_id
                   for n in range(JOBS_EACH)]
        fail = [(await client.enqueue("finish-or-fail", f"bad-{n}",
                                      {"seconds": 2.0, "fail": True})).job_id
                for n in range(JOBS_EACH)]
        everyone = succeed + fail
        await eventually(lambda: all_in(State.ACTIVE, everyone), what="every job running")
        own.stop()

        async def all_ended() -> bool:
            return sum(runs().values()) >= len(everyone)

        await eventually(all_ended, what="every first attempt to end during the outage")
        own.start()  # same port, same AOF
        await eventually(lambda: all_in(State.COMPLETED, everyone), timeout=60,
                         what="every job completed")

        ran = runs()
        for job_id in succeed:
            job = await client.get_job(job_id)
            assert (ran[job_id], job.attempts, [h.outcome for h in job.history]) == (
                1, 1, ["completed"]), job
        for job_id in fail:
            job = await client.get_job(job_id)
            assert (ran[job_id], job.attempts, [h.outcome for h in job.history]) == (
                2, 2, ["failed", "completed"]), job
            assert job.history[0].error == "ValueError: planned failure", job
    finally:
        await redis.aclose()
        worker.stop()
        own.stop()
