#!/usr/bin/env bash
# Prints jobq's version: pyproject.toml's [project] version, the one version of the package, the
# image tag hack/image.sh gives by default and the chart's version and appVersion
# (tests/test_versions.py checks they agree; docs/versions.md says when it changes).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-python3}" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])'
