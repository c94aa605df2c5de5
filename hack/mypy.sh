#!/usr/bin/env bash
# mypy (strict) over the one `jobq` namespace as installed: the strict editable install links
# api/, worker/ and operator/ into jobq.api, jobq.worker and jobq.operator under build/, so
# mypy runs there to see every component under its real name.
set -euo pipefail
cd "$(dirname "$0")/.."
farm=$(ls -d build/__editable__.jobq-*/ 2>/dev/null | head -1)
[ -n "$farm" ] || { echo "no editable install found: run hack/bootstrap.sh" >&2; exit 1; }
cd "$farm"
exec ../../.venv/bin/mypy --config-file ../../pyproject.toml -p jobq "$@"
