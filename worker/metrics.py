"""The worker's Prometheus metrics (listed in docs/operations.md, Monitoring); served by
jobq.health with /healthz.

The series every job updates (completed, recovered, wait and duration) are plain numbers the
event loop's thread adds to, read by a collector at scrape time: prometheus_client's own
counters and histograms take a lock per update (a histogram two). The rest stay
prometheus_client metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from jobq.workflows.metrics import duration_histogram

LABELS = ("queue", "type")
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                300)
# prometheus_client's default buckets, which this series always had (+Inf is added by us).
DURATION_BUCKETS = tuple(float(b) for b in Histogram.DEFAULT_BUCKETS if b != float("inf"))


class LoopCounter:
    """A counter only the event loop's thread adds to (no lock); read at scrape time."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram only the event loop's thread observes into (no lock): ``counts[i]`` holds
    the observations in bucket i alone (the last is +Inf), made cumulative at scrape time."""

    __slots__ = ("bounds", "counts", "les", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.les = [repr(float(b)) for b in bounds] + ["+Inf"]  # as prometheus_client writes them
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1  # first bound >= value: le semantics

    def cumulative(self) -> list[tuple[str, float]]:
        counts = list(self.counts)  # one copy: a scrape sees one consistent set of buckets
        out: list[tuple[str, float]] = []
        running = 0
        for le, count in zip(self.les, counts, strict=True):
            running += count
            out.append((le, running))
        return out


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """The per-job series of one (queue, type) on the hot path."""

    completed: LoopCounter
    duration: LoopHistogram
    recovered: LoopCounter
    wait: LoopHistogram


class _PerJobCollector:
    """Exposes every TaskMetrics under the names and help texts the series always had."""

    def __init__(self, children: dict[tuple[str, str], TaskMetrics]) -> None:
        self._children = children

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(dict(self._children)))

    @staticmethod
    def _families(children: dict[tuple[str, str], TaskMetrics]) -> list[Metric]:
        completed = CounterMetricFamily("jobq_jobs_completed_total", "Jobs completed.",
                                        labels=LABELS)
        recovered = CounterMetricFamily("jobq_jobs_recovered_total",
                                        "Jobs that succeeded after a failed or lost attempt.",
                                        labels=LABELS)
        duration = HistogramMetricFamily("jobq_job_duration_seconds",
                                         "Handler run time of successful jobs.", labels=LABELS)
        wait = HistogramMetricFamily("jobq_job_wait_seconds", "Time from ready to started.",
                                     labels=LABELS)
        for key, series in children.items():
            completed.add_metric(key, series.completed.value)
            recovered.add_metric(key, series.recovered.value)
            duration.add_metric(key, series.duration.cumulative(), series.duration.sum)
            wait.add_metric(key, series.wait.cumulative(), series.wait.sum)
        return [completed, duration, recovered, wait]


class WorkerMetrics:
    """The worker's metrics, in a registry of this process's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.attempts_failed = Counter(
            "jobq_job_attempts_failed_total",
            "Attempts that failed in the handler (errors, timeouts), retries included.",
            LABELS, registry=r)
        self.dlq = Counter("dlq_jobs", "Jobs that entered the dead-letter queue.", LABELS,
                           registry=r)
        self.lost = Counter("jobq_jobs_lost_total",
                            "Attempts taken back after their lease expired (worker crashes).",
                            LABELS, registry=r)
        self.in_flight = Gauge("jobq_worker_jobs_in_flight", "Jobs running now.", ("queue",),
                               registry=r)
        self.stuck_threads = Gauge(
            "jobq_worker_stuck_threads",
            "Threads of sync handlers still running past their timeout; each keeps its slot "
            "busy until it returns.", ("queue",), registry=r)
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
        self.recycles = Counter(
            "jobq_worker_recycles_total",
            "Worker recycles (--max-jobs, --max-rss-mb): it stopped claiming and exited 0.",
            ("reason",), registry=r)
        self.children_replaced = Counter(
            "jobq_worker_children_replaced_total",
            "Child processes of the process executor replaced, by reason (max_jobs, max_rss, "
            "hard_timeout, died, cancel).", ("queue", "reason"), registry=r)
        self.workflow_duration = duration_histogram(r)
        self._children: dict[tuple[str, str], TaskMetrics] = {}
        r.register(_PerJobCollector(self._children))

    def held(self, queue: str, by_rate: int, by_concurrency: int) -> None:
        if by_rate:
            self.limited.labels(queue, "rate").inc(by_rate)
        if by_concurrency:
            self.limited.labels(queue, "concurrency").inc(by_concurrency)

    def of(self, queue: str, task_type: str) -> TaskMetrics:
        """The per-job series of one (queue, type); call on the event loop's thread only."""
        key = (queue, task_type)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = TaskMetrics(
                completed=LoopCounter(), duration=LoopHistogram(DURATION_BUCKETS),
                recovered=LoopCounter(), wait=LoopHistogram(WAIT_BUCKETS),
            )
        return found
