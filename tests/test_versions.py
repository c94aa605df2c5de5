"""One version names a release: the package's (pyproject.toml, what `jobq --version` says), the
image tag hack/image.sh gives and the chart's version and appVersion (docs/versions.md); and
CHANGELOG.md keeps the Keep-a-Changelog form with a section for that version or Unreleased."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.any_server

REPO = Path(__file__).resolve().parent.parent
JOBQ = str(Path(sys.executable).with_name("jobq"))


def project_version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    return str(tomllib.loads(text)["project"]["version"])


def test_package_image_and_chart_share_one_version() -> None:
    expected = project_version()
    chart = yaml.safe_load((REPO / "charts" / "jobq" / "Chart.yaml").read_text())
    assert (str(chart["version"]), str(chart["appVersion"])) == (expected, expected), chart
    values = yaml.safe_load((REPO / "charts" / "jobq" / "values.yaml").read_text())
    assert values["image"]["tag"] == "", "an empty image.tag means the chart's appVersion"
    printed = subprocess.run(["bash", str(REPO / "hack" / "version.sh")], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
    assert printed == expected  # hack/image.sh tags localhost/jobq:<this> by default
    assert 'version="$(bash "$root/hack/version.sh")"' in (REPO / "hack" / "image.sh").read_text()
    assert version("jobq") == expected, "reinstall: bash hack/bootstrap.sh"
    shown = subprocess.run([JOBQ, "--version"], capture_output=True, text=True, timeout=60)
    assert shown.stdout.split()[-1] == expected, shown


def test_changelog_keeps_a_changelog() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n"), "Keep a Changelog's title"
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.MULTILINE)
    names = [name for name, _ in releases]
    assert names and names[0] == "Unreleased", names
    assert project_version() in names, f"no section for {project_version()}"
    for name, date in releases[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", name) and date, (name, date)
    kinds = set(re.findall(r"^### (\w+)$", text, re.MULTILINE))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds
    for name in names[1:]:  # every released version is linked at the bottom
        assert re.search(rf"^\[{re.escape(name)}\]: \S+$", text, re.MULTILINE), name
