#!/usr/bin/env bash
# Takes the README's picture of a trace in Jaeger's UI (docs/trace-in-jaeger.png) from a real
# run: builds (or reuses from the cache) the pinned Jaeger (hack/jaeger.sh) and its UI
# (hack/jaeger-ui.sh), then runs tests/trace_picture.py: a real Jaeger serving that UI, real
# `jobq api` and `jobq worker` processes exporting over OTLP, a request whose job fails once and
# then succeeds, and Debian's chromium opening the trace. Not part of `make test`.
#
# Env: JOBQ_TRACE_PICTURE (default docs/trace-in-jaeger.png), and those of the two build scripts
# (JOBQ_CACHE_DIR, JAEGER_UI_GIT). Needs: .venv (hack/bootstrap.sh), Go, Node with npm, chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x /usr/bin/chromium ]] || { echo "trace-picture: no /usr/bin/chromium (apt-get install -y chromium)" >&2; exit 3; }
bash hack/jaeger.sh >/dev/null
ui_assets="$(bash hack/jaeger-ui.sh | tail -n1)"
picture="${JOBQ_TRACE_PICTURE:-docs/trace-in-jaeger.png}"
JOBQ_JAEGER_UI="$ui_assets" JOBQ_TRACE_PICTURE="$(realpath -m "$picture")" \
  .venv/bin/pytest tests/trace_picture.py -q -p no:cacheprovider
echo "trace-picture: wrote $picture"
