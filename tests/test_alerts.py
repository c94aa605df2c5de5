"""The chart's PrometheusRule, unit-tested: rendered by ``helm template``, checked by ``promtool
check rules`` and run by ``promtool test rules`` against series that must fire each alert and
series that must not, with the ``for:`` durations and thresholds taken from the values. Every
metric and label an expression names must be one a real jobq process exports."""

from __future__ import annotations

import fractions
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from exported_metrics import Catalog, exported_catalog, unknown_names
from monitoring_tools import (
    CHART,
    NAMESPACE,
    chart_values,
    helm_binary,
    minutes,
    only,
    promtool,
    promtool_binary,
    render,
    set_args,
)
from promql_names import names_in

from jobq.embedded import ServerProcess

pytestmark = pytest.mark.any_server

OTHER_NS = "someone-else"
ALERTS = {"JobqDeadLetterGrowing", "JobqBacklogHigh", "JobqNoWorkers", "JobqWorkersDown",
          "JobqJobFailureRatioHigh", "JobqRedisUnreachable", "JobqRedisMemoryHigh",
          "JobqOutboxStale", "JobqWorkflowRelayLagging"}
# Value sets the cases are derived from: the defaults, the example values file, and odd numbers
# (so a case that only passes for the defaults fails here).
ODD = {"metrics.prometheusRule.backlogThreshold": 37, "metrics.prometheusRule.backlogFor": "3m",
       "metrics.prometheusRule.noWorkersFor": "7m", "metrics.prometheusRule.workersDownFor": "2m",
       "metrics.prometheusRule.failureRatioThreshold": 0.1,
       "metrics.prometheusRule.failureRatioFor": "4m",
       "metrics.prometheusRule.deadLetterWindow": "30m",
       "metrics.prometheusRule.redisDownFor": "6m",
       "metrics.prometheusRule.redisMemoryThreshold": 0.65,
       "metrics.prometheusRule.redisMemoryFor": "8m",
       "metrics.prometheusRule.outboxAgeThreshold": 97,
       "metrics.prometheusRule.outboxAgeFor": "4m",
       "metrics.prometheusRule.workflowRelayLagThreshold": 43,
       "metrics.prometheusRule.workflowRelayLagFor": "6m"}
VARIANTS = {"defaults": ([], {}),
            "ingress-monitoring": ([CHART / "ci" / "ingress-monitoring-values.yaml"], {}),
            "odd": ([], ODD)}
TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="module")
def promtool_bin() -> str:
    return promtool_binary()


class Rules:
    """The rendered rules of one value set, written where promtool can read them."""

    def __init__(self, docs: list[dict[str, Any]], values: dict[str, Any], path: Path) -> None:
        self.spec = only(docs, "PrometheusRule")["spec"]
        self.values = values["metrics"]["prometheusRule"]
        self.rules = {r["alert"]: r for g in self.spec["groups"] for r in g["rules"]}
        # worker Service name (the `job` label a ServiceMonitor gives its targets) per queue
        self.worker_jobs = {
            doc["metadata"]["labels"]["jobq.io/queue"]: doc["metadata"]["name"]
            for doc in docs if doc["kind"] == "Service"
            and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
        }
        self.api_job = next(doc["metadata"]["name"] for doc in docs if doc["kind"] == "Service"
                            and doc["metadata"]["labels"].get("app.kubernetes.io/component")
                            == "api")
        self.path = path
        path.write_text(yaml.safe_dump(self.spec))


@pytest.fixture(scope="module", params=list(VARIANTS))
def rules(request: pytest.FixtureRequest, helm: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Rules:
    files, sets = VARIANTS[request.param]
    docs = render(helm, *[a for f in files for a in ("-f", f)], *set_args(sets))
    path = tmp_path_factory.mktemp(f"rules-{request.param}") / "rules.yaml"
    return Rules(docs, chart_values(*files, sets=sets), path)


@pytest.fixture(scope="module")
def exported(redis_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return exported_catalog(redis_server.url, tmp_path_factory.mktemp("scraped"))


# -- what Prometheus prints for $value in an annotation ----------------------------------------

def go_value(v: float) -> str:
    """``{{ $value }}``: Go's %v of a float64 (shortest form; plain below 1e21 for integers)."""
    assert float(v).is_integer() and abs(v) < 1e6, v  # the cases only use such values
    return str(int(v))


def humanize(v: float) -> str:
    assert 1 <= abs(v) < 1000 or v == 0, v  # no SI prefix in the range the cases use
    return f"{v:.4g}"


def humanize_percentage(v: float) -> str:
    return f"{v * 100:.4g}%"


def expand(text: str, labels: dict[str, str], value: float) -> str:
    """An annotation as Prometheus renders it; unknown template pieces fail the test."""

    def one(m: re.Match[str]) -> str:
        piece = m.group(1)
        if piece.startswith("$labels."):
            return labels[piece.removeprefix("$labels.")]  # KeyError: a label the alert lacks
        if piece == "$value":
            return go_value(value)
        if piece == "$value | humanize":
            return humanize(value)
        if piece == "$value | humanizePercentage":
            return humanize_percentage(value)
        raise AssertionError(f"template piece the test does not know: {piece!r}")

    return TEMPLATE.sub(one, text)


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{body}}}", "values": values}


def firing(rules: Rules, alert: str, labels: dict[str, str], value: float) -> dict[str, Any]:
    rule = rules.rules[alert]
    return {"exp_labels": {**rule["labels"], **labels},
            "exp_annotations": {k: expand(v, labels, value)
                                for k, v in rule["annotations"].items()}}


def check(alert: str, at: int, *fired: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": f"{at}m", "alertname": alert, "exp_alerts": list(fired)}


# -- the cases ---------------------------------------------------------------------------------

def dead_letter_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires while a job entered the DLQ within the window, not for old entries, other
    namespaces or a worker restart (its counter back at 0)."""
    window = minutes(r.values["deadLetterWindow"])
    start = window + 5  # entries arrive here; the window before it is fully sampled
    span = start + 2 * window
    ns = {"namespace": NAMESPACE}
    inputs = [
        series("dlq_jobs_total", f"0x{start - 1} 2x{span}", **ns, pod="w1",
               queue="report-queue", type="flaky"),
        series("dlq_jobs_total", f"0x{start - 1} 1x{span}", **ns, pod="w2",
               queue="report-queue", type="flaky"),
        series("dlq_jobs_total", f"3x{start + span}", **ns, pod="w1", queue="email-queue",
               type="welcome-email"),  # old entries
        series("dlq_jobs_total", f"5x{start - 1} 0x{span}", **ns, pod="w3",
               queue="cleanup-queue", type="cleanup-temp"),  # worker restarted
        series("dlq_jobs_total", f"0x{start - 1} 9x{span}", namespace=OTHER_NS, pod="x",
               queue="report-queue", type="flaky"),
        # a fresh worker's series appears with its first entry, already at 1 (`_xN` is N gaps)
        series("dlq_jobs_total", f"_x{start} 1x{span}", **ns, pod="w4",
               queue="email-queue", type="fresh"),
    ]
    alert = "JobqDeadLetterGrowing"
    fired = firing(r, alert, {"queue": "report-queue", "type": "flaky"}, 3)
    fresh = firing(r, alert, {"queue": "email-queue", "type": "fresh"}, 1)
    return [{"interval": "1m", "input_series": inputs, "alert_rule_test": [
        check(alert, start - 1),
        check(alert, start + 1, fresh, fired),
        check(alert, start + window - 1, fresh, fired),
        check(alert, start + window + 1),  # nothing new within the window: resolved
    ]}]


def backlog_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` with more than the threshold waiting (as every API pod reports it);
    not at the threshold, not for other states or namespaces, not before `for`."""
    n, hold = int(r.values["backlogThreshold"]), minutes(r.values["backlogFor"])
    span = hold + 5
    ns = {"namespace": NAMESPACE, "state": "waiting"}
    inputs = [
        series("jobq_queue_jobs", f"{n + 1}x{span}", **ns, pod="api-a", queue="email-queue"),
        series("jobq_queue_jobs", f"{n + 1}x{span}", **ns, pod="api-b", queue="email-queue"),
        series("jobq_queue_jobs", f"{n}x{span}", **ns, pod="api-a", queue="report-queue"),
        series("jobq_queue_jobs", f"{n * 10}x{span}", namespace=NAMESPACE, state="active",
               pod="api-a", queue="cleanup-queue"),
        series("jobq_queue_jobs", f"{n * 10}x{span}", namespace=OTHER_NS, state="waiting",
               pod="api-z", queue="cleanup-queue"),
    ]
    alert = "JobqBacklogHigh"
    fired = firing(r, alert, {"queue": "email-queue"}, n + 1)
    return [{"interval": "1m", "input_series": inputs, "alert_rule_test": [
        check(alert, hold - 1), check(alert, hold + 1, fired)]}]


def no_workers_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` for a queue with waiting jobs and no worker target up (crash-looping,
    or none at all: scaled to zero and not woken); not while one worker is up, not for an empty
    queue, not saved by the API's targets."""
    hold = minutes(r.values["noWorkersFor"])
    span = hold + 5
    jobs, api = r.worker_jobs, r.api_job
    ns = {"namespace": NAMESPACE}

    def waiting(queue: str, count: int, namespace: str = NAMESPACE) -> dict[str, str]:
        return series("jobq_queue_jobs", f"{count}x{span}", namespace=namespace,
                      state="waiting", pod="api-a", queue=queue)

    def up(queue: str, pod: str, value: int) -> dict[str, str]:
        return series("up", f"{value}x{span}", **ns, job=jobs[queue], jobq_queue=queue, pod=pod)

    crash_looping = [
        waiting("email-queue", 5), up("email-queue", "e1", 0),
        waiting("report-queue", 5), up("report-queue", "r1", 1), up("report-queue", "r2", 0),
        waiting("cleanup-queue", 0),
        series("up", f"1x{span}", **ns, job=api, pod="api-a"),
        waiting("cleanup-queue", 5, namespace=OTHER_NS),
    ]
    scaled_to_zero = [waiting("cleanup-queue", 3), waiting("email-queue", 0),
                      up("email-queue", "e1", 0)]
    alert = "JobqNoWorkers"
    return [
        {"interval": "1m", "input_series": crash_looping, "alert_rule_test": [
            check(alert, hold - 1),
            check(alert, hold + 1, firing(r, alert, {"queue": "email-queue"}, 5))]},
        {"interval": "1m", "input_series": scaled_to_zero, "alert_rule_test": [
            check(alert, hold - 1),
            check(alert, hold + 1, firing(r, alert, {"queue": "cleanup-queue"}, 3))]},
    ]


def workers_down_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` when every worker target of a queue is down; not while one is up, not
    for the API's targets or another namespace."""
    hold = minutes(r.values["workersDownFor"])
    span = hold + 5
    jobs = r.worker_jobs
    ns = {"namespace": NAMESPACE}
    inputs = [
        series("up", f"0x{span}", **ns, job=jobs["email-queue"], jobq_queue="email-queue",
               pod="e1"),
        series("up", f"0x{span}", **ns, job=jobs["email-queue"], jobq_queue="email-queue",
               pod="e2"),
        series("up", f"1x{span}", **ns, job=jobs["report-queue"], jobq_queue="report-queue",
               pod="r1"),
        series("up", f"0x{span}", **ns, job=jobs["report-queue"], jobq_queue="report-queue",
               pod="r2"),
        series("up", f"0x{span}", **ns, job=r.api_job, pod="api-a"),
        series("up", f"0x{span}", namespace=OTHER_NS, job=jobs["cleanup-queue"],
               jobq_queue="cleanup-queue", pod="c1"),
    ]
    alert = "JobqWorkersDown"
    fired = firing(r, alert, {"jobq_queue": "email-queue"}, 0)
    return [{"interval": "1m", "input_series": inputs, "alert_rule_test": [
        check(alert, hold - 1), check(alert, hold + 1, fired)]}]


def failure_ratio_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` when more than the threshold of attempts fails; not at half of it, not
    for another namespace."""
    threshold = fractions.Fraction(str(r.values["failureRatioThreshold"])).limit_denominator(1000)
    num, den = threshold.numerator, threshold.denominator
    hold = minutes(r.values["failureRatioFor"])
    span = hold + 5
    ns = {"namespace": NAMESPACE, "pod": "w1"}
    high = {"queue": "report-queue", "type": "flaky"}
    low = {"queue": "email-queue", "type": "welcome-email"}
    # per minute: high fails 2n of n+d attempts (> n/d), low fails n of 2d (= half the threshold)
    inputs = [
        series("jobq_job_attempts_failed_total", f"0+{2 * num}x{span}", **ns, **high),
        series("jobq_jobs_completed_total", f"0+{den - num}x{span}", **ns, **high),
        series("jobq_job_attempts_failed_total", f"0+{num}x{span}", **ns, **low),
        series("jobq_jobs_completed_total", f"0+{2 * den - num}x{span}", **ns, **low),
        series("jobq_job_attempts_failed_total", f"0+5x{span}", namespace=OTHER_NS, pod="x",
               **low),
    ]
    alert = "JobqJobFailureRatioHigh"
    fired = firing(r, alert, high, 2 * num / (num + den))
    # the ratio exists from the second sample (1m): pending from then on
    return [{"interval": "1m", "input_series": inputs, "alert_rule_test": [
        check(alert, hold), check(alert, hold + 2, fired)]}]


def redis_unreachable_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` when no API pod can read Redis; not while one still can, not for
    another namespace."""
    hold = minutes(r.values["redisDownFor"])
    span = hold + 5
    ns = {"namespace": NAMESPACE}
    down = [series("jobq_api_redis_up", f"0x{span}", **ns, pod="api-a"),
            series("jobq_api_redis_up", f"0x{span}", **ns, pod="api-b"),
            series("jobq_api_redis_up", f"1x{span}", namespace=OTHER_NS, pod="api-z")]
    one_left = [series("jobq_api_redis_up", f"0x{span}", **ns, pod="api-a"),
                series("jobq_api_redis_up", f"1x{span}", **ns, pod="api-b"),
                series("jobq_api_redis_up", f"0x{span}", namespace=OTHER_NS, pod="api-z")]
    alert = "JobqRedisUnreachable"
    return [
        {"interval": "1m", "input_series": down, "alert_rule_test": [
            check(alert, hold - 1), check(alert, hold + 1, firing(r, alert, {}, 0))]},
        {"interval": "1m", "input_series": one_left, "alert_rule_test": [
            check(alert, hold + 1)]},
    ]


def redis_memory_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` when Redis uses more than the threshold of its maxmemory (as every API
    pod reports it); not at or below it, not without a maxmemory (0), not for another
    namespace."""
    threshold = fractions.Fraction(str(r.values["redisMemoryThreshold"]))
    hold = minutes(r.values["redisMemoryFor"])
    span = hold + 5
    limit = 1000
    over = int(threshold * limit) + 10
    at = int(threshold * limit)

    def memory(used: int, maximum: int, pod: str, namespace: str = NAMESPACE) -> list[dict[str, str]]:
        return [series("jobq_redis_memory_used_bytes", f"{used}x{span}", namespace=namespace,
                       pod=pod),
                series("jobq_redis_maxmemory_bytes", f"{maximum}x{span}", namespace=namespace,
                       pod=pod)]

    alert = "JobqRedisMemoryHigh"
    full = [*memory(over, limit, "api-a"), *memory(over, limit, "api-b")]
    quiet = [*memory(at, limit, "api-a"), *memory(10 * limit, 0, "api-b"),
             *memory(over, limit, "api-z", namespace=OTHER_NS)]
    return [
        {"interval": "1m", "input_series": full, "alert_rule_test": [
            check(alert, hold - 1), check(alert, hold + 1, firing(r, alert, {}, over / limit))]},
        {"interval": "1m", "input_series": quiet, "alert_rule_test": [check(alert, hold + 1)]},
    ]


def outbox_stale_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires after `for` when the oldest outbox row (as every relay of the table reports it) is
    older than the threshold; not at it, not before `for`, not for another namespace."""
    limit, hold = int(r.values["outboxAgeThreshold"]), minutes(r.values["outboxAgeFor"])
    span = hold + 5
    ns = {"namespace": NAMESPACE}
    stale = [series("jobq_outbox_oldest_age_seconds", f"{limit + 60}x{span}", **ns, pod="relay-a"),
             series("jobq_outbox_oldest_age_seconds", f"{limit + 60}x{span}", **ns, pod="relay-b"),
             series("jobq_outbox_oldest_age_seconds", f"{limit * 9}x{span}", namespace=OTHER_NS,
                    pod="relay-z")]
    at_limit = [series("jobq_outbox_oldest_age_seconds", f"{limit}x{span}", **ns, pod="relay-a")]
    alert = "JobqOutboxStale"
    return [
        {"interval": "1m", "input_series": stale, "alert_rule_test": [
            check(alert, hold - 1),
            check(alert, hold + 1, firing(r, alert, {"namespace": NAMESPACE}, limit + 60))]},
        {"interval": "1m", "input_series": at_limit, "alert_rule_test": [check(alert, hold + 1)]},
    ]


def workflow_relay_cases(r: Rules) -> list[dict[str, Any]]:
    """Fires per queue after `for` when the oldest workflow outbox entry (as every API pod
    reports it) is older than the threshold; not at it, not before `for`, not for another
    namespace."""
    limit, hold = int(r.values["workflowRelayLagThreshold"]), minutes(r.values["workflowRelayLagFor"])
    span = hold + 5
    ns = {"namespace": NAMESPACE}
    metric = "jobq_workflow_outbox_oldest_seconds"
    inputs = [series(metric, f"{limit + 30}x{span}", **ns, pod="api-a", queue="email-queue"),
              series(metric, f"{limit + 30}x{span}", **ns, pod="api-b", queue="email-queue"),
              series(metric, f"{limit}x{span}", **ns, pod="api-a", queue="report-queue"),
              series(metric, f"{limit * 9}x{span}", namespace=OTHER_NS, pod="api-z",
                     queue="cleanup-queue")]
    alert = "JobqWorkflowRelayLagging"
    return [{"interval": "1m", "input_series": inputs, "alert_rule_test": [
        check(alert, hold - 1),
        check(alert, hold + 1, firing(r, alert, {"queue": "email-queue"}, limit + 30))]}]


CASES = {"JobqDeadLetterGrowing": dead_letter_cases, "JobqBacklogHigh": backlog_cases,
         "JobqNoWorkers": no_workers_cases, "JobqWorkersDown": workers_down_cases,
         "JobqJobFailureRatioHigh": failure_ratio_cases,
         "JobqRedisUnreachable": redis_unreachable_cases,
         "JobqRedisMemoryHigh": redis_memory_cases,
         "JobqOutboxStale": outbox_stale_cases,
         "JobqWorkflowRelayLagging": workflow_relay_cases}


def write_tests(rules: Rules, rules_file: Path, out: Path) -> Path:
    tests = [case for build in CASES.values() for case in build(rules)]
    out.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                   "tests": tests}, sort_keys=False))
    return out


# -- the tests ---------------------------------------------------------------------------------

def test_every_alert_has_cases(rules: Rules) -> None:
    assert set(rules.rules) == ALERTS == set(CASES)
    assert set(rules.worker_jobs) == {"email-queue", "report-queue", "cleanup-queue"}


def test_promtool_check_rules_accepts_the_rendered_rules(rules: Rules, promtool_bin: str) -> None:
    result = promtool(promtool_bin, "check", "rules", rules.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout, result.stdout


def test_alerts_fire_when_they_must_and_only_then(rules: Rules, promtool_bin: str) -> None:
    tests = write_tests(rules, rules.path, rules.path.with_name("tests.yaml"))
    result = promtool(promtool_bin, "test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


# Broken rules the tests must catch: each is a mistake someone could make in the template, as
# (alert, field, old, new): `old` replaced by `new` in that field of that alert's rule.
MUTANTS = {
    "metric renamed": ("JobqJobFailureRatioHigh", "expr", "jobq_jobs_completed_total",
                       "jobq_jobs_complete_total"),
    "label value typo": ("JobqBacklogHigh", "expr", 'state="waiting"', 'state="wating"'),
    "threshold inclusive": ("JobqDeadLetterGrowing", "expr", ") > 0", ") >= 0"),
    "for removed": ("JobqBacklogHigh", "for", None, "0s"),
    "worker job regex wrong": ("JobqNoWorkers", "expr", "-worker-.*", "-workers-.*"),
    "annotation label typo": ("JobqDeadLetterGrowing", "description", "$labels.queue",
                              "$labels.qeue"),
    "grouping dropped": ("JobqDeadLetterGrowing", "expr", "by (queue, type)", "by (queue)"),
    "new series not counted": ("JobqDeadLetterGrowing", "expr", "dlq_jobs_total{", "dlq_jobs{"),
    "any pod instead of every pod": ("JobqRedisUnreachable", "expr", "max(", "min("),
    "no maxmemory counted as full": ("JobqRedisMemoryHigh", "expr", " > 0)", " >= 0)"),
    "outbox age at the threshold fires": ("JobqOutboxStale", "expr", ") > ", ") >= "),
    "outbox of every namespace": ("JobqOutboxStale", "expr", "namespace=~", "namespace!~"),
    "relay lag at the threshold fires": ("JobqWorkflowRelayLagging", "expr", ") > ", ") >= "),
    "relay lag not per queue": ("JobqWorkflowRelayLagging", "expr", "by (queue)", "by (pod)"),
}


def mutate(rule: dict[str, Any], field: str, old: str | None, new: str) -> None:
    holder = rule["annotations"] if field in rule.get("annotations", {}) else rule
    if old is None:
        holder[field] = new
        return
    assert old in holder[field], f"mutation does not apply to {holder[field]!r}"
    holder[field] = holder[field].replace(old, new, 1)


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_a_broken_rule_fails_the_alert_tests(mutant: str, helm: Path, promtool_bin: str,
                                             tmp_path: Path) -> None:
    rules = Rules(render(helm), chart_values(), tmp_path / "rules.yaml")
    tests = write_tests(rules, rules.path, tmp_path / "tests.yaml")  # cases of the good rules
    alert, field, old, new = MUTANTS[mutant]
    mutate(rules.rules[alert], field, old, new)  # rules.rules holds the spec's own rule dicts
    rules.path.write_text(yaml.safe_dump(rules.spec))
    result = promtool(promtool_bin, "test", "rules", tests)
    assert result.returncode != 0, f"{mutant}: promtool passed a broken rule\n{result.stdout}"


@pytest.mark.timeout(240)  # the first to use `exported` runs the scrape scenario
def test_alerts_name_only_exported_metrics_and_labels(rules: Rules, exported: Catalog) -> None:
    problems = {alert: unknown_names(rule["expr"], exported)
                for alert, rule in rules.rules.items()}
    assert not any(problems.values()), problems
    # the check bites: a renamed metric or a label the metric lacks is reported
    assert unknown_names('sum(rate(jobq_jobs_complete_total{queue="a"}[5m]))', exported)
    assert unknown_names('jobq_queue_jobs{status="waiting"}', exported)
    assert unknown_names("sum by (tenant) (jobq_queue_jobs)", exported)


@pytest.mark.timeout(240)  # the first to use `exported` runs the scrape scenario
def test_exported_catalog_has_what_the_alerts_read(exported: Catalog) -> None:
    """The scrape really saw the series (with their labels), not only their names."""
    assert {"queue", "type"} <= exported["dlq_jobs_total"]
    assert {"queue", "state"} <= exported["jobq_queue_jobs"]
    assert {"queue", "type", "le"} <= exported["jobq_job_wait_seconds_bucket"]
    assert {"queue"} <= exported["jobq_operator_desired_replicas"]
    assert "jobq_jobs_lost_total" in exported
    assert {"jobq_redis_memory_used_bytes", "jobq_redis_maxmemory_bytes"} <= set(exported)
    assert "jobq_outbox_oldest_age_seconds" in exported
    assert {"queue"} <= exported["jobq_workflow_outbox_oldest_seconds"]


def test_names_in_reads_selectors_past_strings_ranges_and_calls() -> None:
    found = names_in('(max by (queue) (a_total{x="1", y=~"b|c"}[5m] offset 1m) > 0) unless on '
                     '(queue) label_replace(up{job=~".*-worker-.*"} == 1, "queue", "$1", '
                     '"jobq_queue", "(.*)") * ignoring (pod) group_left (le) b:rec '
                     'or sum(rate({__name__="c", d="e"}[1m])) without (f)')
    assert found.metrics == {"a_total", "up", "b:rec", "c"}
    assert {s.metric: set(s.labels) for s in found.selectors} == {
        "a_total": {"x", "y"}, "up": {"job"}, "b:rec": set(), "c": {"d"}}
    assert found.grouping == {"queue", "pod", "le", "f"}
