"""The chart's Grafana dashboard: off by default, a ConfigMap Grafana's sidecar picks up when
on, and every panel query parses (``promtool check rules`` on one recording rule per query) and
names only metrics and labels real jobq processes export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from exported_metrics import Catalog, exported_catalog, unknown_names
from monitoring_tools import (
    CHART,
    NAMESPACE,
    dashboard,
    helm_binary,
    panels,
    promtool,
    promtool_binary,
    queries,
    render,
)
from promql_names import names_in

from jobq.embedded import ServerProcess

pytestmark = pytest.mark.any_server

# What an operator needs to see on the dashboard, by the metric that shows it.
REQUIRED = {
    "throughput per queue": "jobq_jobs_completed_total",
    "failures per queue": "jobq_job_attempts_failed_total",
    "wait-time percentiles": "jobq_job_wait_seconds_bucket",
    "duration percentiles": "jobq_job_duration_seconds_bucket",
    "backlog per state": "jobq_queue_jobs",
    "dead-lettered": "dlq_jobs_total",
    "workers": "up",
    "desired replicas": "jobq_operator_desired_replicas",
    "current replicas": "jobq_operator_current_replicas",
    "workflow relay lag": "jobq_workflow_outbox_oldest_seconds",
    "workflows by state": "jobq_workflows",
    "workflow duration": "jobq_workflow_duration_seconds_bucket",
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="module")
def exported(redis_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return exported_catalog(redis_server.url, tmp_path_factory.mktemp("scraped"))


def dashboard_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == "ConfigMap"
            and "grafana_dashboard" in doc["metadata"].get("labels", {})]


def test_dashboard_is_off_by_default(helm: Path) -> None:
    assert dashboard_maps(render(helm)) == []


def test_dashboard_configmap_is_what_the_grafana_sidecar_loads(helm: Path) -> None:
    docs = render(helm, "--set", "metrics.grafanaDashboard.enabled=true")
    (cm,) = dashboard_maps(docs)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert json.loads(cm["data"]["jobq.json"]) == dashboard()


def test_dashboard_namespace_label_and_annotations_follow_values(helm: Path) -> None:
    docs = render(helm, "-f", CHART / "ci" / "ingress-monitoring-values.yaml",
                  "--set", "metrics.grafanaDashboard.label=my_dashboards",
                  "--set-string", "metrics.grafanaDashboard.labelValue=yes",
                  "--set", "metrics.grafanaDashboard.labels.team=queues")
    (cm,) = [doc for doc in docs if doc["kind"] == "ConfigMap"
             and doc["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["namespace"] == "monitoring"  # from the example values file
    assert cm["metadata"]["annotations"] == {"grafana_folder": "jobq"}
    labels = cm["metadata"]["labels"]
    assert labels["my_dashboards"] == "yes" and labels["team"] == "queues"
    assert "grafana_dashboard" not in labels


def test_every_panel_query_parses(promtool_bin: str, tmp_path: Path) -> None:
    found = queries(dashboard())
    assert len(found) >= 20, found
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(found.values())
    ]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool(promtool_bin, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(found)} rules found" in result.stdout, result.stdout
    # and the check bites: one broken query fails it
    rules["groups"][0]["rules"].append({"record": "dashboard:broken",
                                        "expr": "sum by (queue (rate(x[5m]))"})
    path.write_text(yaml.safe_dump(rules))
    assert promtool(promtool_bin, "check", "rules", path).returncode != 0


@pytest.fixture(scope="module")
def promtool_bin() -> str:
    return promtool_binary()


@pytest.mark.timeout(240)  # the first to use `exported` runs the scrape scenario
def test_every_panel_query_names_only_exported_metrics(exported: Catalog) -> None:
    problems = {where: unknown_names(expr, exported) for where, expr in queries(dashboard()).items()}
    assert not {k: v for k, v in problems.items() if v}, problems


def test_dashboard_shows_what_operators_need() -> None:
    board = dashboard()
    read = {m for expr in queries(board).values() for m in _metrics(expr)}
    missing = {what: metric for what, metric in REQUIRED.items() if metric not in read}
    assert not missing, missing
    quantiles = " ".join(queries(board).values())
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (queue, le) (rate(jobq_job_wait_seconds_bucket" \
            in quantiles


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    board = dashboard()
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), ids
    cells: set[tuple[int, int]] = set()
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def _metrics(expr: str) -> set[str]:
    return names_in(expr).metrics
