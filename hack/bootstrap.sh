#!/usr/bin/env bash
# Create .venv and install jobq (editable, strict mode so mypy and pytest see one namespace)
# with its dev tools. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.jobq-installed
# Reinstall when pyproject.toml or the set of package files changed (strict editable
# installs link files one by one, so a new module needs a reinstall).
want=$( (cat pyproject.toml; find jobq api worker operator -name '*.py' -o -name '*.lua' | sort) | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q -e '.[dev]' --config-settings editable_mode=strict
  echo "$want" > "$stamp"
fi
