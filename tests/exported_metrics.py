"""What jobq processes really export: metric names and their label names, scraped from a real
``jobq api`` and ``jobq worker`` after jobs ran (completed, failed, dead-lettered, lost with a
killed worker and recovered), plus the operator's registry read in-process (the operator needs a
Kubernetes API server to start; its registry is the one object its /metrics serves)."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
from fixtures import Proc, events, process_env
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from promql_names import names_in

from jobq.contrib.outbox.metrics import OutboxMetrics
from jobq.embedded import free_port
from jobq.operator.metrics import OperatorMetrics
from jobq.settings import Settings

Catalog = dict[str, set[str]]  # sample name -> label names it carries
# Labels the Prometheus Operator puts on every target of a ServiceMonitor, and the chart's own
# relabeling of worker targets (jobq_queue, from the worker Service's jobq.io/queue label).
TARGET_LABELS = {"namespace", "service", "pod", "container", "endpoint", "job", "instance"}
WORKER_TARGET_LABELS = {"jobq_queue"}
# Series Prometheus writes itself for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
DEADLINE_S = 60.0

_cache: dict[str, dict[str, Catalog]] = {}


def sample_names(family: Metric) -> list[str]:
    """The sample names a family is exposed as (also when it has no sample yet)."""
    return [family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))]


def parse_exposition(text: str) -> Catalog:
    """Sample names with the label names their samples carry (``le`` included)."""
    catalog: Catalog = {}
    for family in text_string_to_metric_families(text):
        for name in sample_names(family):
            catalog.setdefault(name, set())
        for sample in family.samples:
            catalog.setdefault(sample.name, set()).update(sample.labels)
    return catalog


def registry_catalog(registry: CollectorRegistry, metrics: Iterable[object]) -> Catalog:
    """Names from ``registry.collect()``; label names as the metric objects declare them."""
    catalog: Catalog = {}
    declared = {m._name: set(m._labelnames) for m in metrics
                if isinstance(m, MetricWrapperBase)}
    for family in registry.collect():
        labels = declared.get(family.name, set())
        for name in sample_names(family):
            extra = {"le"} if name.endswith("_bucket") else set()
            catalog[name] = labels | extra
    return catalog


def operator_catalog() -> Catalog:
    metrics = OperatorMetrics()
    return registry_catalog(metrics.registry, vars(metrics).values())


def outbox_catalog() -> Catalog:
    """The outbox relay's series (tests/test_outbox.py scrapes a real relay's /metrics)."""
    metrics = OutboxMetrics()
    return registry_catalog(metrics.registry, vars(metrics).values())


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body: bytes = answer.read()
    return body.decode()


def _until(check: Callable[[], object], what: str, procs: Iterable[Proc]) -> None:
    """Poll ``check`` until truthy; fail with the processes' output after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            logs = "\n".join(p.output()[-3000:] for p in procs)
            raise AssertionError(f"timed out waiting for {what}:\n{logs}")
        time.sleep(0.05)


def _worker_port(proc: Proc) -> int | None:
    found = events(proc, "worker.started")
    return int(found[0]["metricsPort"]) if found else None


def _has_samples(text: str, *names: str) -> bool:
    catalog = parse_exposition(text)
    return all(catalog.get(name) for name in names)


def scrape_processes(redis_url: str, workdir: Path) -> dict[str, Catalog]:
    """Run jobs through a real API and workers; their /metrics as catalogs ('api', 'worker').

    Computed once per test session (the scenario takes a few seconds); every process is stopped
    before it returns.
    """
    if redis_url in _cache:
        return _cache[redis_url]
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(redis_url=redis_url, key_prefix=f"m{uuid.uuid4().hex[:10]}",
                        tasks=["jobq.demo", "testtasks"], lease_s=2.0, shutdown_grace_s=2.0,
                        log_level="info")
    env = process_env(settings, JOBQ_DEMO_OUTBOX=str(workdir / "outbox.jsonl"))
    procs: list[Proc] = []

    def start(args: list[str], name: str) -> Proc:
        proc = Proc(args, env, workdir / f"{name}.log")
        procs.append(proc)
        return proc

    try:
        api_port = free_port()
        start(["api", "--port", str(api_port)], "api")
        url = f"http://127.0.0.1:{api_port}"

        def api_up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        _until(api_up, "the API to answer /healthz", procs)

        def post(task: str, payload: dict[str, object], **options: object) -> None:
            body = {"type": task, "idempotencyKey": uuid.uuid4().hex, "payload": payload,
                    "options": options}
            answer = httpx.post(f"{url}/jobs", json=body, timeout=10)
            assert answer.status_code == 202, answer.text

        # An attempt lost with its worker: the first worker is killed while the job runs.
        doomed = start(["worker", "--queue", "report-queue:1", "--metrics-port", "0"], "doomed")
        post("sleep", {"seconds": 60, "retrySeconds": 0})
        _until(lambda: events(doomed, "job.started"), "the doomed worker to start a job", procs)
        doomed.kill9()
        worker = start(["worker", "--queue", "email-queue:2", "--queue", "report-queue:2",
                        "--metrics-port", "0"], "worker")
        post("welcome-email", {"email": "ada@example.com", "name": "Ada"})
        post("flaky", {"failTimes": 5}, attempts=1)  # fails its only attempt: the DLQ
        _until(lambda: _worker_port(worker), "the worker to start", procs)
        port = _worker_port(worker)
        assert port is not None
        wanted = ("jobq_jobs_completed_total", "jobq_job_attempts_failed_total",
                  "dlq_jobs_total", "jobq_jobs_lost_total", "jobq_jobs_recovered_total",
                  "jobq_job_wait_seconds_bucket", "jobq_job_duration_seconds_bucket")
        _until(lambda: _has_samples(_scrape(port), *wanted), f"worker samples of {wanted}", procs)
        worker_text = _scrape(port)
        api_text = _scrape(api_port)
        assert _has_samples(api_text, "jobq_queue_jobs", "jobq_jobs_enqueued_total",
                            "jobq_api_requests_total"), api_text
    finally:
        for proc in procs:
            proc.stop()
    _cache[redis_url] = {"api": parse_exposition(api_text),
                         "worker": parse_exposition(worker_text)}
    return _cache[redis_url]


def exported_catalog(redis_url: str, workdir: Path) -> Catalog:
    """Every series name a jobq deployment has in Prometheus, with the labels it can carry."""
    scraped = scrape_processes(redis_url, workdir)
    catalog: Catalog = {}
    for part, extra in ((scraped["api"], set()), (scraped["worker"], WORKER_TARGET_LABELS),
                        (operator_catalog(), set()), (outbox_catalog(), set())):
        for name, labels in part.items():
            catalog.setdefault(name, set()).update(labels | TARGET_LABELS | extra)
    for name in PROMETHEUS_SERIES:
        catalog.setdefault(name, set()).update(TARGET_LABELS | WORKER_TARGET_LABELS)
    return catalog


def unknown_names(expr: str, exported: Catalog) -> list[str]:
    """Metrics and labels ``expr`` names that no jobq process (or Prometheus itself) exports."""
    found = names_in(expr)
    problems = [f"metric {m}" for m in sorted(found.metrics - set(exported))]
    for selector in found.selectors:
        if selector.metric in exported:
            problems += [f"label {selector.metric}{{{label}}}"
                         for label in sorted(set(selector.labels) - exported[selector.metric])]
    every_label = set().union(*exported.values())
    problems += [f"grouping label {label}" for label in sorted(found.grouping - every_label)]
    return problems
