"""The dashboard's queries and the chart's rules against a real Prometheus (Debian's server, the one promtool ships
with) scraping real ``jobq api`` and ``jobq worker`` processes after jobs ran: every panel query
that does not need the operator returns data. The targets carry the labels the chart's
ServiceMonitors give them (namespace, job = Service name, pod, jobq_queue on workers), so the
queries are tried on the label model they will meet in a cluster. The operator's panels need a
real operator, which needs a Kubernetes API server: they are left to the cluster tier."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fixtures import Proc, events, process_env
from monitoring_tools import (
    NAMESPACE,
    RELEASE,
    dashboard,
    helm_binary,
    missing,
    only,
    queries,
    render,
)

from jobq.embedded import free_port
from jobq.settings import Settings

pytestmark = pytest.mark.any_server

FULLNAME = f"{RELEASE}-jobq"
DEADLINE_S = 90.0
NEEDS_OPERATOR = "jobq_operator_"


def _until(check: Callable[[], Any], what: str, logs: Callable[[], str]) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()}")
        time.sleep(0.2)


class Prometheus:
    """A Prometheus server on a free port with a static scrape config, and its HTTP API."""

    def __init__(self, binary: str, workdir: Path, targets: list[dict[str, Any]],
                 rule_files: list[Path]) -> None:
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                             "evaluation_interval": "1s"},
                  "rule_files": [str(f) for f in rule_files], "scrape_configs": targets}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("wb")
        self.popen = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.logfile = workdir / "prometheus.log"

    def output(self) -> str:
        return self.logfile.read_text(errors="replace")[-4000:]

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr})
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        missing("no prometheus server (apt-get install prometheus; hack/test.sh does)")
    assert found is not None
    return found


def _target(job: str, port: int, pod: str, **labels: str) -> dict[str, Any]:
    return {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {
        "namespace": NAMESPACE, "pod": pod, "service": job, "endpoint": "metrics", **labels}}]}


def _metrics_port(proc: Proc) -> int | None:
    found = events(proc, "worker.started")
    return int(found[0]["metricsPort"]) if found else None


@pytest.fixture
def live(spawn: Callable[..., Proc], settings: Settings, prometheus_binary: str,
         tmp_path: Path) -> Iterator[Prometheus]:
    """API + one worker per queue (one lost an attempt with a killed worker), jobs run, and a
    Prometheus scraping them all every second with the chart's rules loaded."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(only(render(helm_binary()), "PrometheusRule")["spec"]))
    env = process_env(settings)
    api_port = free_port()
    api = spawn(["api", "--port", str(api_port)], env, name="api")
    url = f"http://127.0.0.1:{api_port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    _until(healthy, "the API", api.output)

    def post(task: str, payload: dict[str, Any], **options: Any) -> None:
        body = {"type": task, "idempotencyKey": uuid.uuid4().hex, "payload": payload,
                "options": options}
        answer = httpx.post(f"{url}/jobs", json=body, timeout=10)
        assert answer.status_code == 202, answer.text

    doomed = spawn(["worker", "--queue", "report-queue:1", "--metrics-port", "0"], env,
                   name="doomed")
    post("sleep", {"seconds": 60, "retrySeconds": 0})
    _until(lambda: events(doomed, "job.started"), "the doomed worker's job", doomed.output)
    doomed.kill9()  # its attempt is lost; the report worker takes it back after the lease
    workers = {q: spawn(["worker", "--queue", f"{q}:2", "--metrics-port", "0"], env, name=q)
               for q in ("email-queue", "report-queue")}
    targets = [_target(f"{FULLNAME}-api", api_port, "api-0", container="api")]
    for queue, proc in workers.items():
        port = _until(lambda p=proc: _metrics_port(p), f"{queue} worker", proc.output)
        targets.append(_target(f"{FULLNAME}-worker-{queue}", port, f"{queue}-0",
                               container="worker", jobq_queue=queue))
    prometheus = Prometheus(prometheus_binary, tmp_path, targets, [rules])
    try:
        _until(prometheus.ready, "Prometheus to be ready", prometheus.output)
        _until(lambda: len(prometheus.query("up == 1")) == len(targets), "every target up",
               prometheus.output)
        # Jobs after the first scrapes, so counters rise inside the rate windows.
        for _ in range(3):
            post("welcome-email", {"email": "ada@example.com", "name": "Ada"})
        post("flaky", {"failTimes": 5}, attempts=1)
        post("flaky", {"failTimes": 1}, attempts=2, backoff={"type": "fixed", "delaySeconds": 0})
        yield prometheus
    finally:
        prometheus.stop()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_panel_query_has_data_and_the_dlq_alert_fires_on_a_real_prometheus(
    live: Prometheus,
) -> None:
    """Every panel query returns data; the chart's rule, on real scrapes labelled as the
    ServiceMonitors label them, sees the flaky job that used its only attempt
    (JobqDeadLetterGrowing has no `for:`: it fires). One test, so the API, workers and
    Prometheus start once for both checks."""
    found = queries(dashboard())
    wanted = {k: v.replace("2m]", "30s]") for k, v in found.items() if NEEDS_OPERATOR not in v}
    assert len(wanted) >= len(found) - 3, "only the operator's queries may be left out"
    empty = dict(wanted)

    def all_answered() -> bool:
        for where in list(empty):
            if live.query(empty[where]):
                del empty[where]
        return not empty

    _until(all_answered, "every panel query to return data", lambda: f"still empty: {empty}")

    def fired() -> list[dict[str, Any]]:
        return live.query('ALERTS{alertname="JobqDeadLetterGrowing", alertstate="firing"}')

    alerts = _until(fired, "JobqDeadLetterGrowing to fire", live.output)
    assert [(a["metric"]["queue"], a["metric"]["type"]) for a in alerts] == [
        ("report-queue", "flaky")]
    # nothing else fires on this healthy little install
    others = live.query('ALERTS{alertname!="JobqDeadLetterGrowing", alertstate="firing"}')
    assert others == [], others
