"""One queue's loop: lease as many jobs as there are free slots, run them, repeat (R10).

A claim made for the slots completed jobs freed carries their completions in the same script
call (``complete_claim``): under a steady backlog a job costs one round trip, at any
concurrency. When the loop is not about to claim (the queue is empty, paused or throttled) the
finisher writes completions on its own.

From LANE_SPLIT_AT slots on, a queue's slots are split into two lanes, each with its own claim
loop and completion writer: while Redis runs one lane's claim, this process runs the other
lane's jobs, instead of the whole queue waiting for one big claim (jobs finishing together
otherwise free their slots together, and then all wait for the same answer). Every claim still
takes the highest-priority job waiting and leases only for free slots.

Below 16 slots a lane prefetches (see worker/prefetch.py): it leases up to ``slots`` jobs
more than its free slots while its jobs are short, so a freed slot starts the next job at once
and the claim that refills the buffer (carrying the completions) is in flight while jobs run.

Each queue has its own runner, slots, thread pool and blocking connection, so a backlog or a
slow handler in one queue never delays another. When the queue is empty the runner blocks on
the wait list (BLMOVE of the list onto itself: wakes on the first push, changes nothing) until
work arrives or the next delayed job falls due: no busy polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobq.connection import REDIS_DOWN, Redis, connect, retrying
from jobq.context import JobContext
from jobq.errors import QueuePaused, UnknownTask
from jobq.flow import parse_queue_rates
from jobq.jobs import loads
from jobq.keys import PAUSED_RECHECK_S, QueueKeys
from jobq.logs import get_logger
from jobq.scripts import ClaimAnswer, Claimed, Scripts
from jobq.settings import Settings
from jobq.shutdown import wait_event
from jobq.tasks import Registry
from jobq.tracing import quiet, tracing_for
from jobq.worker import prefetch
from jobq.worker.cancel import end_cancelled
from jobq.worker.execute import Outcome, execute
from jobq.worker.finish import ACK_BATCH, Finished, Finisher
from jobq.worker.leases import LeaseTable
from jobq.worker.metrics import WorkerMetrics
from jobq.worker.prefetch import Prefetched, depth, duration_average
from jobq.worker.processes.choice import pool_for

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from jobq.tracing.spans import Attempt

IDLE_BLOCK_S = 1.0  # longest block on an empty queue before looking at delayed jobs again
MAX_WAIT_S = 2.0  # longest any wait of the fetch loop lasts, whatever it waits for
CANCEL_WAIT_S = 1.0  # how long jobs cancelled at the end of the grace get to unwind
HANDBACK_TIMEOUT_S = 1.5  # the hand-back script call at shutdown, at most
LANE_SPLIT_AT = 32  # from this concurrency on, a queue's slots form two lanes (see above)

log = get_logger("jobq.worker")

# One attempt of a job: (job id, lease token). Per-attempt state is keyed by this, not by the job
# id: a job whose lease was lost can be claimed again by this same process while the handler of
# the lost attempt still runs, and the two runs must not share (and remove) each other's state.
AttemptKey = tuple[str, str]
HANDED_BACK = "handed_back"  # an attempt stopped by shutdown: its job goes back to the queue


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    concurrency: int


def lane_sizes(concurrency: int) -> list[int]:
    """The slots of each lane of a queue: one lane below LANE_SPLIT_AT, else two halves.

    Measured with bench/sidebyside.py (20,000 jobs, one worker process, Valkey): at
    concurrency 64 two lanes drained 17 % more jobs/s than one at the same CPU per job; four
    lanes 4 % more than two, but the no-op engine figure fell 20 %. At concurrency 16 two
    lanes of 8 drained 6 % more for 10 % more CPU per job, a bad trade where CPU is short."""
    if concurrency < LANE_SPLIT_AT:
        return [concurrency]
    return [concurrency - concurrency // 2, concurrency // 2]


class Lane:
    """A share of a queue's slots, with its own claim loop and completion writer.

    Its completions are carried by its own claims (``carrying``), so a lane whose slots are
    all busy with long jobs never holds back another lane's completions."""

    __slots__ = ("avg_s", "buffer", "carrying", "finisher", "limited", "prefetching",
                 "running", "slot_free", "slots", "wake")

    def __init__(self, slots: int, prefetching: bool) -> None:
        self.slots = slots
        self.prefetching = prefetching  # may lease ahead of its free slots (worker/prefetch.py)
        self.buffer: deque[Prefetched] = deque()  # leased, not started yet, in claim order
        self.avg_s: float | None = None  # the lane's recent handler duration (moving average)
        self.limited = False  # the last claim found jobs held by a limit: no prefetch
        self.running = 0  # jobs of this lane being run now
        self.slot_free = asyncio.Event()
        self.wake = asyncio.Event()  # set when this process scheduled a retry: look again
        self.carrying = False  # this lane's next claim carries its completions (see _carry)
        self.finisher: Finisher

    def is_carrying(self) -> bool:
        return self.carrying


class QueueRunner:
    """Fetches and runs the jobs of one queue."""

    def __init__(
        self, spec: QueueSpec, worker_id: str, settings: Settings, registry: Registry,
        scripts: Scripts, leases: LeaseTable, metrics: WorkerMetrics, *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.spec = spec
        self._tracing = tracing_for(tracer_provider)  # None: opentelemetry not installed
        self.worker_id = worker_id
        self.settings = settings
        self.registry = registry
        self.scripts = scripts
        self.leases = leases
        self.metrics = metrics
        self.keys = QueueKeys(settings.key_prefix, spec.name)
        sizes = lane_sizes(spec.concurrency)
        rate = parse_queue_rates(settings.queue_rate_limits).get(spec.name)
        self._rate = (0, 0) if rate is None else (rate.starts, rate.per_ms)
        # Many slots already overlap claims with runs; a queue rate counts claims, not starts.
        prefetching = spec.concurrency < prefetch.PREFETCH_BELOW_SLOTS and rate is None
        self.lanes = [Lane(slots, prefetching) for slots in sizes]
        self._ending: set[asyncio.Task[None]] = set()  # cancelled prefetched jobs being ended
        for lane in self.lanes:
            lane.finisher = Finisher(self.keys, scripts, settings, leases, metrics, self.wake,
                                     claims_next=lane.is_carrying)
        self.finishers = [lane.finisher for lane in self.lanes]
        # Writes failed and lost attempts for the stall sweep (no batching state involved).
        self.finisher = self.finishers[0]
        self.running: dict[AttemptKey, asyncio.Task[Any]] = {}
        self.contexts: dict[AttemptKey, JobContext] = {}  # of the running attempts, for cancels
        # Running attempts whose handler was stopped, and why: "cancel" (on request) or "lost"
        # (the renewer found the lease gone). ctx.cancelled alone cannot tell: a sync handler's
        # timeout sets it too.
        self._stopped: dict[AttemptKey, str] = {}
        self.stuck_threads = 0  # sync handlers past their timeout whose thread still runs
        self._threads = ThreadPoolExecutor(spec.concurrency, thread_name_prefix=spec.name)
        self.processes = pool_for(spec, settings, registry, metrics)  # None: no process tasks
        self.job_ended: Callable[[], None] = lambda: None  # worker recycling counts jobs
        self._stopping = asyncio.Event()
        self._block: asyncio.Task[object] | None = None
        self._blocking: Redis = connect(settings.redis_url, max_connections=1)
        self._lease_ms = int(settings.lease_s * 1000)
        self._log = log.bind(queue=spec.name, worker=worker_id)
        # Read at scrape time: nothing to update per job.
        metrics.in_flight.labels(spec.name).set_function(lambda: len(self.running))
        metrics.stuck_threads.labels(spec.name).set_function(lambda: self.stuck_threads)
        self._paused = metrics.paused.labels(spec.name)

    def stop(self) -> None:
        """Stop fetching: the fetch loop sees this at its next turn (every wait in it ends)."""
        self._stopping.set()
        for lane in self.lanes:
            self._carry(lane, False)
            lane.slot_free.set()
            lane.wake.set()

    async def fetch(self) -> None:
        """Lease and start jobs until ``stop()``.

        Shutdown does not rely on cancelling this task: on Python 3.11 a cancel that arrives as
        a Redis reply completes can be swallowed inside redis-py (gh-86296), and a loop waiting
        for it would run forever. The stop event is checked every turn and ends every wait;
        cancellation stays a second means.
        """
        if self.processes is not None:
            self.processes.start()
        quiet.suppress()  # claims are plumbing: no spans from their Redis calls (R25)
        try:
            if len(self.lanes) == 1:
                await self._fetch_lane(self.lanes[0])
            else:
                await asyncio.gather(*(self._fetch_lane(lane) for lane in self.lanes))
        finally:
            for lane in self.lanes:
                self._carry(lane, False)
            if self._block is not None:
                self._block.cancel()
                self._block.add_done_callback(_retrieve)  # its outcome no longer matters
            await self._blocking.aclose()

    async def _fetch_lane(self, lane: Lane) -> None:
        """One lane's loop until ``stop()``, retried on its own: an error in one lane never
        cancels the other (a cancel could land inside its claim and lose the reply)."""
        try:
            # Any error (an outage, or e.g. Redis refusing writes at maxmemory) is logged and
            # retried with backoff: a queue's fetcher must never stop while the process lives.
            async for attempt in retrying(max_wait_s=5.0, on=(Exception,), until=self._stopping):
                with attempt:
                    try:
                        await self._fetch_until_stopped(lane)
                    except REDIS_DOWN as exc:
                        self._log.warning("worker.redis_unavailable", error=str(exc))
                        raise
                    except Exception:
                        self._log.exception("worker.fetch_error")
                        raise
        except Exception:
            if not self._stopping.is_set():
                raise
            # Stopping after an error that was logged above: nothing more to do.

    def _carry(self, lane: Lane, on: bool) -> None:
        """Whether the lane's next claim carries its completions; when it will not, its
        finisher writes them itself, now."""
        lane.carrying = on and not self._stopping.is_set()
        if not lane.carrying:
            lane.finisher.wake()

    async def _fetch_until_stopped(self, lane: Lane) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            if lane.buffer and loop.time() - lane.buffer[0].claimed_at > prefetch.FRESH_S:
                await self._put_back_stale(lane, loop.time())
            free = lane.slots - lane.running
            ahead = self._depth(lane)
            want = free + ahead - len(lane.buffer)
            # The buffer is refilled once it is empty: the claim then carries the completions
            # of the jobs whose ends emptied it and leases a whole batch (refilling earlier,
            # with jobs still running, sent claims of one or two jobs and no completions, and
            # the completions in calls of their own: 2.2 times the script calls per job).
            if want <= 0 or lane.buffer:
                # The slot a completion frees is claimed with the completion in the same call
                # (completions left over from the last claim are written by the finisher, unless
                # the buffer still holds jobs: the claim that refills it, soon, carries them).
                self._carry(lane, lane.finisher.pending == 0 or bool(lane.buffer))
                lane.slot_free.clear()
                # Not past the moment the oldest prefetched job is due to go back.
                await wait_event(lane.slot_free, self._buffer_wait_s(lane, loop.time()))
                # Jobs finishing in the same loop turn free their slots together: one claim.
                await asyncio.sleep(0)
                continue
            self._carry(lane, True)
            try:
                answer = await self._claim(lane, want)
            except QueuePaused:
                # Nothing was leased; ask again after a bounded wait (ended early by stop()),
                # never in a busy loop. Prefetched jobs go back once past FRESH_S (R15).
                self._carry(lane, False)
                self._paused.set(1)
                await wait_event(self._stopping,
                                 min(PAUSED_RECHECK_S, self._buffer_wait_s(lane, loop.time())))
                continue
            except BaseException:
                self._carry(lane, False)
                raise
            self._paused.set(0)
            lane.limited = bool(answer.held_rate or answer.held_concurrency or answer.throttled)
            if answer.held_rate or answer.held_concurrency:
                self.metrics.held(self.spec.name, answer.held_rate, answer.held_concurrency)
            redis_now, next_due = answer.now_ms, answer.next_due_ms
            now = loop.time()
            tracer = None if self._tracing is None else self._tracing.tracer()
            spans: list[AbstractContextManager[Attempt] | None] = [None] * len(answer.jobs)
            for claimed in answer.jobs:  # leased: a renewal must know them from now on
                self.leases.add(self.spec.name, claimed.job_id, claimed.token)
            if tracer is not None and answer.jobs:
                spans = await self._attempt_spans(tracer, answer.jobs)
            for claimed, span in zip(answer.jobs, spans, strict=True):
                p = Prefetched(claimed, redis_now, now, span)
                if lane.prefetching:
                    lane.buffer.append(p)
                elif not self._stopping.is_set():  # (else put back with the rest, R9)
                    self._start(p, lane, now)
            if lane.buffer:
                self._fill_slots(lane)
            if answer.throttled and next_due is not None:
                # Jobs wait but the queue's rate allows none yet: the bell would ring at once.
                self._carry(lane, False)
                due_in_s = max(0.001, (next_due - redis_now) / 1000)
                await wait_event(self._stopping, min(MAX_WAIT_S, due_in_s))
            elif not answer.jobs and not lane.finisher.pending:
                # The due time is on Redis's clock: wait the difference, not until a local time.
                self._carry(lane, False)
                await self._await_work(lane, None if next_due is None else next_due - redis_now)
            # else: jobs started, or completions arrived meanwhile: the next claim carries them

    async def _claim(self, lane: Lane, free: int) -> ClaimAnswer:
        """Lease up to ``free`` jobs; the lane's completions waiting to be written go in the
        same call. Raises QueuePaused (after writing the completions) while it is paused."""
        finisher = lane.finisher
        batch = finisher.take(ACK_BATCH)
        if not batch:
            return await self.scripts.claim_answer(
                self.keys, free, self._lease_ms, self.worker_id, self._rate,
                caller=self._caller(lane))
        try:
            results, answer = await self.scripts.complete_and_claim(
                self.keys, self.settings.completed_keep, self.settings.completed_max_age_s * 1000,
                finisher.triples(batch), free, self._lease_ms, self.worker_id, self._rate,
                caller=self._caller(lane))
        except BaseException:
            finisher.give_back(batch)  # written by the finisher, with its retries
            raise
        finisher.settle(batch, results)
        if answer is None:
            raise QueuePaused(f"queue {self.spec.name} is paused")
        return answer

    def _caller(self, lane: Lane) -> str:
        """A lane's claims are one sequence of calls (lua/lib/calls.lua): an answer lost to
        a timeout is handed back by the lane's next claim (R22)."""
        return f"{self.worker_id}:{self.lanes.index(lane)}"

    async def _await_work(self, lane: Lane, due_in_ms: int | None) -> None:
        """Wait for a push to the wait list, the next delayed job, a local retry or ``stop()``,
        and never longer than MAX_WAIT_S.

        The blocking call keeps running if a local event wins; it is reused, never cancelled,
        so its connection stays usable.
        """
        if self._stopping.is_set():
            return
        if self._block is not None and self._block.done():
            finished, self._block = self._block, None
            finished.result()  # a Redis outage surfaces here and is retried by fetch()
        if self._block is None:
            self._block = asyncio.create_task(self._peek_blocking())
        timeout = MAX_WAIT_S if due_in_ms is None else min(MAX_WAIT_S, max(0.005, due_in_ms / 1000))
        # Nor past the moment the oldest prefetched job is due to go back.
        timeout = min(timeout, self._buffer_wait_s(lane, asyncio.get_running_loop().time()))
        lane.wake.clear()  # each lane its own: one lane's clear must not hide a wake from another
        woken = asyncio.create_task(lane.wake.wait())
        try:
            await asyncio.wait({self._block, woken}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()

    async def _peek_blocking(self) -> object:
        """Block until the bell rings: some wait list (of any priority) may hold a job. Moving
        the bell onto itself changes nothing; claim silences it when every list is empty."""
        # Redis >= 6 takes fractional seconds; redis-py's stub says int.
        return await self._blocking.blmove(
            self.keys.bell, self.keys.bell, IDLE_BLOCK_S, "RIGHT", "RIGHT")  # type: ignore[arg-type]

    def wake(self) -> None:
        for lane in self.lanes:
            lane.wake.set()

    def cancel_job(self, job_id: str, token: str) -> None:
        """The attempt was asked to cancel (learnt at lease renewal): flag it, and cancel an
        async handler's task; a sync handler on its thread sees ``ctx.cancelled`` and returns."""
        key = (job_id, token)
        ctx = self.contexts.get(key)
        if ctx is None:
            found = self._find_prefetched(job_id, token)
            if found is not None and not self._stopping.is_set():
                self._cancel_prefetched(*found)
            return
        if key in self._stopped:
            return
        self._log.info("job.cancel_requested", jobId=job_id)
        self._stop_handler(key, ctx, "cancel")

    def lease_lost(self, job_id: str, token: str) -> None:
        """The renewer found this attempt's lease gone: a sweeper reclaimed it after it expired
        and ended the attempt, and the job may already run again (perhaps here). Stop the
        handler as a cancel would, so the lost attempt does not keep running beside the retry;
        its end is not written (the lease is gone, any write would be refused)."""
        self._log.warning("job.lease_lost", jobId=job_id, token=token)
        key = (job_id, token)
        ctx = self.contexts.get(key)
        if ctx is None:
            found = self._find_prefetched(job_id, token)
            if found is not None:
                self._unbuffer(*found)  # never started; someone else runs it now
            return
        self._stop_handler(key, ctx, "lost")

    def _stop_handler(self, key: AttemptKey, ctx: JobContext, why: str) -> None:
        self._stopped[key] = why
        ctx.cancelled = True
        task = self.running.get(key)
        try:
            is_async = self.registry.get(ctx.type).is_async
        except UnknownTask:
            is_async = True
        if task is not None and is_async:
            task.cancel()

    async def _attempt_spans(
        self, tracer: Tracer, jobs: list[Claimed],
    ) -> list[AbstractContextManager[Attempt] | None]:
        """Each claimed attempt's ``process`` span, entered when it starts (R25): their
        carriers are read in one round trip first (claims do not return them: only traced
        workers pay)."""
        from jobq.tracing import carrier, spans

        try:
            async with self.scripts.redis.pipeline(transaction=False) as pipe:
                for claimed in jobs:
                    pipe.hget(self.keys.job(claimed.job_id), carrier.FIELD)
                carriers = await pipe.execute()
        except Exception as exc:  # leased already: the jobs must run, their spans start new traces
            self._log.warning("worker.trace_carriers_unread", error=repr(exc))
            carriers = [None] * len(jobs)
        made: list[AbstractContextManager[Attempt] | None] = []
        for claimed, raw in zip(jobs, carriers, strict=True):
            try:
                mode = self.registry.get(claimed.type).trace_propagation
            except UnknownTask:
                mode = None
            made.append(spans.attempt(tracer, claimed, self.spec.name, self.worker_id, raw,
                                      mode or self.settings.trace_propagation))
        return made

    def _depth(self, lane: Lane) -> int:
        return depth(lane.slots, lane.avg_s) if lane.prefetching and not lane.limited else 0

    def _fill_slots(self, lane: Lane) -> None:
        """Start leased jobs in the lane's free slots, oldest first, while they are fresh: one
        that waited longer than FRESH_S since its claim goes back (``_put_back_stale``)."""
        if self._stopping.is_set():
            return  # claimed as the stop came: not run, put back with the rest (R9)
        loop_now = asyncio.get_running_loop().time()
        while lane.buffer and lane.running < lane.slots:
            head = lane.buffer[0]
            if loop_now - head.claimed_at > prefetch.FRESH_S:
                lane.wake.set()  # the fetch loop checks it (and may be waiting for work)
                lane.slot_free.set()
                return
            lane.buffer.popleft()
            self._start(head, lane, loop_now)

    def _buffer_wait_s(self, lane: Lane, loop_now: float) -> float:
        """How long the fetch loop may wait before its oldest prefetched job is due back."""
        if not lane.buffer:
            return MAX_WAIT_S
        due = lane.buffer[0].claimed_at + prefetch.FRESH_S - loop_now
        return min(MAX_WAIT_S, max(0.001, due))

    async def _put_back_stale(self, lane: Lane, loop_now: float) -> None:
        """Prefetched jobs not started within FRESH_S of their claim go back to the front of
        the queue, unspent and not counted as hand-backs: every start happens within FRESH_S
        of a claim that saw the queue unpaused and took the highest priority waiting (R15,
        R17), and jobs this lane cannot start soon go to another worker."""
        stale: list[Prefetched] = []
        while lane.buffer and loop_now - lane.buffer[0].claimed_at > prefetch.FRESH_S:
            stale.append(lane.buffer.popleft())
        # Its jobs are not short after all: no prefetch until one ends and the average restarts.
        lane.avg_s = None
        await self._put_back(stale)

    async def _put_back(self, jobs: list[Prefetched]) -> None:
        if not jobs:
            return
        leases = [(p.claimed.job_id, p.claimed.token) for p in jobs]
        try:
            await self.scripts.put_back(self.keys, leases)
        finally:
            # Put back, or (Redis failing) left to expire and be reclaimed by a sweeper.
            for job_id, token in leases:
                self.leases.discard(self.spec.name, job_id, token)

    def _unbuffer(self, lane: Lane, p: Prefetched) -> None:
        with contextlib.suppress(ValueError):  # already taken out (cancel and check raced)
            lane.buffer.remove(p)

    def _find_prefetched(self, job_id: str, token: str) -> tuple[Lane, Prefetched] | None:
        for lane in self.lanes:
            for p in lane.buffer:
                if p.claimed.job_id == job_id and p.claimed.token == token:
                    return lane, p
        return None

    def _cancel_prefetched(self, lane: Lane, p: Prefetched) -> None:
        """A prefetched job asked to cancel never starts: it ends ``cancelled`` now (R16)."""
        self._unbuffer(lane, p)
        ending = asyncio.create_task(self._end_cancelled(p.claimed, self._context(p.claimed)))
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)

    def _start(self, p: Prefetched, lane: Lane, loop_now: float) -> None:
        claimed = p.claimed
        # Ready -> started, both on Redis's clock (plus the time it sat prefetched here): the
        # latency users feel (jobq_job_wait_seconds).
        started_ms = p.redis_now_ms + (loop_now - p.claimed_at) * 1000
        self.metrics.of(self.spec.name, claimed.type).wait.observe(
            max(0.0, (started_ms - claimed.ready_at_ms) / 1000))
        lane.running += 1
        key = (claimed.job_id, claimed.token)
        self.running[key] = asyncio.create_task(
            self._process(claimed, key, lane) if p.span is None
            else self._traced(claimed, key, lane, p.span))

    async def _traced(self, c: Claimed, key: AttemptKey, lane: Lane,
                      span: AbstractContextManager[Attempt]) -> None:
        """One attempt inside its ``process`` span, which records how it ended (R25)."""
        with span as attempt:
            ended, error, delay_s = await self._process(c, key, lane)
            attempt.ended(ended, error, delay_s)

    def _context(self, c: Claimed) -> JobContext:
        job_log = self._log.bind(jobId=c.job_id, type=c.type, attempt=c.attempt)
        return JobContext(
            job_id=c.job_id, type=c.type, queue=self.spec.name, attempt=c.attempt,
            max_attempts=c.max_attempts, worker=self.worker_id, token=c.token,
            settings=self.settings, log=job_log, _scripts=self.scripts, _keys=self.keys,
            _loop=asyncio.get_running_loop(),
        )

    async def _process(self, c: Claimed, key: AttemptKey,
                       lane: Lane) -> tuple[str, str | None, float | None]:
        """Run one attempt and write its end. Says how it ended (a trace's ``jobq.outcome``),
        the exception class of a failure and a retry's delay."""
        ctx = self._context(c)
        job_log = ctx.log
        self.contexts[key] = ctx
        written = False  # the attempt's end is written (only a stuck thread may remain)
        ended, error, delay_s = HANDED_BACK, None, None
        try:
            job_log.info("job.started")
            try:
                task = self.registry.get(c.type)
            except UnknownTask as exc:
                outcome = Outcome(ok=False, reason=str(exc), permanent=True)
            else:
                outcome = await execute(task, ctx, loads(c.payload), self._threads,
                                        c.timeout_s or task.timeout_s, self.processes)
            if lane.prefetching:
                lane.avg_s = duration_average(lane.avg_s, outcome.duration_s)
            done = Finished(c, ctx, outcome)
            stopped = self._stopped.get(key)
            if stopped == "lost":
                job_log.warning("job.abandoned", reason="lease lost while running")
                ended = "lease_lost"
            elif stopped == "cancel":  # whatever the handler did after the cancel, it was cancelled
                await self._end_cancelled(c, ctx)
                ended = "cancelled"
            elif outcome.ok:
                lane.finisher.complete(done)
                ended = "completed"
            else:
                ended, delay_s = await lane.finisher.fail(done)
                head = outcome.reason.partition(":")[0]  # "ValueError: ..."
                error = head if head.isidentifier() else None
                if outcome.history_label == "timeout" and ended == "retry":
                    ended = "timeout"
            written = True
            if outcome.overran is not None:
                await self._outlive(outcome.overran, job_log)
        except asyncio.CancelledError:
            stopped = self._stopped.get(key)
            # Cancelled on request or for a lost lease, not by shutdown (nor, past the write,
            # by shutdown while a stuck thread holds the slot: nothing is left to end then).
            if stopped is not None and not written:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                if stopped == "lost":
                    job_log.warning("job.abandoned", reason="lease lost while running")
                    ended = "lease_lost"
                else:
                    await self._end_cancelled(c, ctx)
                    ended = "cancelled"
            # else shutdown: the lease stays in the table and is handed back (R9)
        except Exception as exc:
            job_log.exception("job.worker_error")  # a bug of ours must not stop the queue
            ended, error = "unrecorded", type(exc).__name__
        finally:
            # Only this attempt's own entries: another attempt of the same job may be running.
            self.contexts.pop(key, None)
            self.running.pop(key, None)
            self._stopped.pop(key, None)
            lane.running -= 1
            if lane.buffer:  # a prefetched job starts now, not after the claim in flight
                self._fill_slots(lane)
            lane.slot_free.set()
            self.job_ended()
        return ended, error, delay_s

    async def _outlive(self, thread: asyncio.Future[Any], job_log: Any) -> None:
        """Keep the job's slot until the thread of a sync handler that overran its timeout
        returns (its attempt is already written, so the job retries meanwhile, elsewhere or in
        another slot).

        The queue's pool has one thread per slot. Freeing the slot at the timeout let the next
        job be claimed and queued behind the stuck thread, where it timed out without ever
        starting and spent its attempts. Holding the slot instead keeps ``concurrency`` an
        honest bound on the handlers running at once (what the queue was sized for: database
        connections, memory), and jobs this worker cannot start stay waiting for another
        worker. The count shows as ``jobq_worker_stuck_threads``."""
        thread.add_done_callback(_retrieve)  # its outcome no longer matters, even at shutdown
        self.stuck_threads += 1
        job_log.warning("job.thread_stuck", reason="sync handler still running past its timeout")
        try:
            await asyncio.wait({thread})
        finally:
            self.stuck_threads -= 1
        job_log.info("job.thread_returned")

    async def _end_cancelled(self, c: Claimed, ctx: JobContext) -> None:
        await end_cancelled(c, ctx, self.keys, self.scripts, self.settings, self.leases,
                            self.metrics)

    async def drain(self, deadline: float) -> None:
        """Let running jobs finish until ``deadline`` (loop time); cancel the rest (R9)."""
        if self.running:
            await asyncio.wait(list(self.running.values()),
                               timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        for job_task in list(self.running.values()):
            job_task.cancel()
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=CANCEL_WAIT_S)
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self.processes is not None:
            await self.processes.close()  # no child outlives the worker

    async def hand_back(self) -> int:
        """Return every lease still held to the front of the queue, attempt not spent."""
        unstarted = [p for lane in self.lanes for p in lane.buffer]
        for lane in self.lanes:
            lane.buffer.clear()
        held = self.leases.snapshot().get(self.spec.name, [])
        if not held:
            return 0
        never = {(p.claimed.job_id, p.claimed.token) for p in unstarted}
        held = [lease for lease in held if lease not in never]
        try:
            async with asyncio.timeout(HANDBACK_TIMEOUT_S):
                s = self.settings
                await self._put_back(unstarted)  # never started: not a hand-back of theirs
                count = len(unstarted)
                if held:
                    count += await self.scripts.handback(
                        self.keys, held, free_handbacks=s.max_handbacks, keep=s.failed_keep,
                        max_age_ms=s.failed_max_age_s * 1000,
                        dlq_max_age_ms=s.dlq_max_age_s * 1000)
        except (*REDIS_DOWN, TimeoutError) as exc:
            self._log.error("worker.handback_failed", jobs=len(held), error=repr(exc))
            return 0
        for p in unstarted:
            self._log.info("job.put_back", jobId=p.claimed.job_id)
        for job_id, token in held:
            self.leases.discard(self.spec.name, job_id, token)
            self._log.info("job.handed_back", jobId=job_id)
        return count
