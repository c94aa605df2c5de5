"""The worker's per-job series are lock-free numbers exposed by a collector: they must read
exactly as prometheus_client's own counters and histograms would, and a real worker's must count
every job it ran."""

from __future__ import annotations

import random
from collections.abc import Callable

from fixtures import Proc, eventually, job_in, metrics_port, scrape
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobq.client import Client
from jobq.jobs import State
from jobq.worker.metrics import DURATION_BUCKETS, LABELS, WAIT_BUCKETS, WorkerMetrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str, names: set[str]) -> Samples:
    """Every sample of the named families, by sample name and sorted labels (no _created)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.name in names:
            for s in family.samples:
                if not s.name.endswith("_created"):
                    found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_per_job_series_read_as_prometheus_clients_own() -> None:
    """The same observations, bounds themselves included (a bucket holds values <= its le),
    give the same exposition as prometheus_client's Counter and Histogram."""
    oracle = CollectorRegistry()
    completed = Counter("jobq_jobs_completed_total", "Jobs completed.", LABELS, registry=oracle)
    wait = Histogram("jobq_job_wait_seconds", "Time from ready to started.", LABELS,
                     buckets=WAIT_BUCKETS, registry=oracle)
    duration = Histogram("jobq_job_duration_seconds", "Handler run time of successful jobs.",
                         LABELS, buckets=DURATION_BUCKETS, registry=oracle)
    ours = WorkerMetrics()
    rng = random.Random(20261203)
    values = [*WAIT_BUCKETS, *DURATION_BUCKETS, 0.0, 1e-9, 301.0, 1e6]
    values += [rng.uniform(0, 12) for _ in range(500)]
    for n, value in enumerate(values):
        key = ("email-queue", "welcome-email") if n % 3 else ("report-queue", "report")
        series = ours.of(*key)
        series.wait.observe(value)
        series.duration.observe(value / 2)
        series.completed.inc()
        wait.labels(*key).observe(value)
        duration.labels(*key).observe(value / 2)
        completed.labels(*key).inc()
    names = {"jobq_jobs_completed", "jobq_job_wait_seconds", "jobq_job_duration_seconds"}
    expected = samples(generate_latest(oracle).decode(), names)
    got = samples(generate_latest(ours.registry).decode(), names)
    assert len(expected) == 2 * (1 + 2 * 3 + len(WAIT_BUCKETS) + len(DURATION_BUCKETS))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or abs(got[key] - value) < 1e-9 * max(1.0, value), key


async def test_a_real_workers_series_count_every_job_it_ran(
    client: Client, start_worker: Callable[..., Proc]
) -> None:
    worker = start_worker("bench-queue:4")
    port = await metrics_port(worker)
    ids = [(await client.enqueue("noop", f"m-{n}", {})).job_id for n in range(25)]
    for job_id in ids:
        await eventually(lambda j=job_id: job_in(client, j, State.COMPLETED),
                         what=f"job {job_id} completed")
    labels = '{queue="bench-queue",type="noop"}'

    async def counted() -> dict[str, float] | None:
        found = scrape(port)
        return found if found.get(f"jobq_jobs_completed_total{labels}") == 25 else None

    found = await eventually(counted, what="the completed counter to reach 25")
    assert found[f"jobq_job_wait_seconds_count{labels}"] == 25
    assert found[f"jobq_job_duration_seconds_count{labels}"] == 25
    inf = '{le="+Inf",queue="bench-queue",type="noop"}'
    assert found[f"jobq_job_wait_seconds_bucket{inf}"] == 25
    assert found['jobq_worker_jobs_in_flight{queue="bench-queue"}'] == 0
