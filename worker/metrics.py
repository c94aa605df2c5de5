"""The worker's Prometheus metrics (listed in docs/operations.md, Monitoring); served by
jobq.health with /healthz."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LABELS = ("queue", "type")
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                300)


class WorkerMetrics:
    """The worker's metrics, in a registry of this process's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.completed = Counter("jobq_jobs_completed_total", "Jobs completed.", LABELS,
                                 registry=r)
        self.attempts_failed = Counter(
            "jobq_job_attempts_failed_total",
            "Attempts that failed in the handler (errors, timeouts), retries included.",
            LABELS, registry=r)
        self.duration = Histogram("jobq_job_duration_seconds",
                                  "Handler run time of successful jobs.", LABELS, registry=r)
        self.dlq = Counter("dlq_jobs", "Jobs that entered the dead-letter queue.", LABELS,
                           registry=r)
        self.recovered = Counter("jobq_jobs_recovered_total",
                                 "Jobs that succeeded after a failed or lost attempt.", LABELS,
                                 registry=r)
        self.wait = Histogram("jobq_job_wait_seconds", "Time from ready to started.", LABELS,
                              buckets=WAIT_BUCKETS, registry=r)
        self.lost = Counter("jobq_jobs_lost_total",
                            "Attempts taken back after their lease expired (worker crashes).",
                            LABELS, registry=r)
        self.in_flight = Gauge("jobq_worker_jobs_in_flight", "Jobs running now.", ("queue",),
                               registry=r)
        self.cancelled = Counter("jobq_jobs_cancelled_total",
                                 "Running jobs whose attempt ended cancelled on request.", LABELS,
                                 registry=r)
        self.paused = Gauge("jobq_queue_paused",
                            "1 while this worker finds the queue paused (it claims nothing).",
                            ("queue",), registry=r)
        self.limited = Counter(
            "jobq_jobs_limited_total",
            "Jobs a claim held back by a limit (reason=rate: delayed until the window allows; "
            "reason=concurrency: parked until a slot of its key frees).", ("queue", "reason"),
            registry=r)
        self._children: dict[tuple[str, str], TaskMetrics] = {}

    def held(self, queue: str, by_rate: int, by_concurrency: int) -> None:
        if by_rate:
            self.limited.labels(queue, "rate").inc(by_rate)
        if by_concurrency:
            self.limited.labels(queue, "concurrency").inc(by_concurrency)

    def of(self, queue: str, task_type: str) -> TaskMetrics:
        """The labelled series of one (queue, type), looked up once: ``labels()`` is not free."""
        key = (queue, task_type)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = TaskMetrics(
                completed=self.completed.labels(*key), duration=self.duration.labels(*key),
                recovered=self.recovered.labels(*key), wait=self.wait.labels(*key),
            )
        return found


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """The per-job series of one (queue, type) on the hot path."""

    completed: Counter
    duration: Histogram
    recovered: Counter
    wait: Histogram
