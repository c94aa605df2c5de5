"""helm and promtool for the monitoring tests, the chart rendered with its monitoring objects,
and the dashboard's queries as Prometheus receives them.

helm is the pinned one hack/k8s-tools.sh builds (hack/test.sh builds it before the suite, so
here it is only looked up); promtool is Debian's (package ``prometheus``, installed by
hack/test.sh). Either missing: skip locally, fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.tools import ToolsUnavailable, find_bin_dir
from fixtures import REPO

CHART = REPO / "charts" / "jobq"
RELEASE = "jq"
NAMESPACE = "jq-mon"
DASHBOARD = CHART / "dashboards" / "jobq.json"
# What Grafana substitutes before a query reaches Prometheus.
VARIABLES = {"$__rate_interval": "2m", "${datasource}": "", "$namespace": NAMESPACE,
             "$queue": ".+"}
# Only a lookup when the cache is built; a cold build belongs to hack/test.sh, not to a test.
LOOKUP_TIMEOUT_S = 90.0
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def helm_binary() -> Path:
    try:
        return find_bin_dir(build_timeout_s=LOOKUP_TIMEOUT_S) / "helm"
    except ToolsUnavailable as exc:
        missing(f"no helm (bash hack/k8s-tools.sh builds it): {exc}")
        raise  # unreachable: missing() raises


def promtool_binary() -> str:
    found = shutil.which("promtool")
    if found is None:
        missing("no promtool (apt-get install prometheus; hack/test.sh does)")
    assert found is not None
    return found


def promtool(binary: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60)


def render(helm: Path, *args: str | Path) -> list[dict[str, Any]]:
    """``helm template`` with the Prometheus Operator API present and ServiceMonitors on."""
    result = subprocess.run(
        [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
         "--api-versions", "monitoring.coreos.com/v1",
         "--set", "metrics.serviceMonitor.enabled=true", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects rendered"
    return found[0]


def chart_values(*files: Path, sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """values.yaml merged with value files and dotted ``--set`` keys, as helm merges them."""
    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    for file in files:
        _merge(merged, yaml.safe_load(file.read_text()) or {})
    for dotted, value in (sets or {}).items():
        *parents, leaf = dotted.split(".")
        node = merged
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return merged


def set_args(sets: dict[str, Any]) -> list[str]:
    """``--set-json`` flags: numbers stay numbers (helm's --set makes 0.1 a string)."""
    return [arg for key, value in sets.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def minutes(duration: str) -> int:
    """A Prometheus duration in whole minutes (the tests' evaluation step)."""
    seconds = sum(int(n) * UNIT_S[unit] for n, unit in DURATION.findall(duration))
    assert DURATION.sub("", duration) == "" and seconds % 60 == 0, duration
    return int(seconds // 60)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def queries(board: dict[str, Any]) -> dict[str, str]:
    """Panel title / refId -> PromQL as Prometheus receives it (variables substituted)."""
    found = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            found[f"{panel['title']} / {target['refId']}"] = substitute(target["expr"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
            assert query, variable
            found[f"variable {variable['name']}"] = substitute(query.group(1))
    return found


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr
