"""The docs site builds in strict mode (a broken link, a missing page or a docstring mkdocstrings
cannot render fails), with the HTTP reference generated from the OpenAPI document and the
Python reference from the docstrings (docs/versions.md; `make docs`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.any_server

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_docs_site_builds_strict_with_both_references(tmp_path: Path) -> None:
    # A copy, so the build writes nothing into the checkout (hack/docs.sh does the same there).
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path)
    subprocess.run([str(BIN / "python"), str(REPO / "hack" / "openapi_md.py"),
                    str(tmp_path / "docs" / "reference")], check=True, cwd=REPO, timeout=120)
    # Not --quiet: mkdocs then drops the warnings that --strict counts, and builds anyway.
    built = subprocess.run([str(BIN / "mkdocs"), "build", "--strict"], cwd=tmp_path,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True,
                           text=True, timeout=180)
    assert built.returncode == 0, built.stderr
    site = tmp_path / "site"
    http = (site / "reference" / "http" / "index.html").read_text()
    assert "POST /jobs" in http and "JobCreate" in http and "welcome-email" in (
        site / "reference" / "openapi.json").read_text()
    python = (site / "reference" / "python" / "index.html").read_text()
    assert "enqueue" in python and "RetryLater" in python
    for page in ("architecture", "operations", "performance", "versions"):
        assert (site / page / "index.html").is_file(), page
