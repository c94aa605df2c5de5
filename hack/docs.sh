#!/usr/bin/env bash
# Builds the docs site (target of `make docs`): the HTTP reference generated from the OpenAPI
# document (hack/openapi_md.py), then mkdocs-material over docs/ in strict mode into site/
# (or DIR). Extra arguments go to `mkdocs build`. Needs the `docs` extra (in the dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
"$BIN/python" hack/openapi_md.py docs/reference
# Not --quiet: mkdocs then drops the warnings --strict counts. NO_MKDOCS_2_WARNING: the theme's
# end-of-life banner (its successor, zensical, reads this same mkdocs.yml).
NO_MKDOCS_2_WARNING=1 exec "$BIN/mkdocs" build --strict "$@"
