#!/usr/bin/env bash
# Create .venv and install jobq (editable, strict mode so mypy and pytest see one namespace)
# with its dev tools, at the exact versions of requirements-dev.lock (hash-checked).
# Idempotent and quick when nothing changed.
#
#   bash hack/bootstrap.sh                 install or update .venv from the lock
#   bash hack/bootstrap.sh --lock          re-resolve the locks after pyproject.toml changed
#                                          (keeps every pin that still fits), then install
#   bash hack/bootstrap.sh --upgrade-lock  move every pin to the newest version pyproject.toml
#                                          allows (a deliberate upgrade: run the tests after)
#
# pyproject.toml keeps the ranges jobq supports; the locks are what tests and the image use:
# requirements-dev.lock (runtime + dev tools, here) and requirements.lock (the runtime with every
# extra, `jobq[all]`: the Dockerfile), resolved together so both pin the same versions.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PIP_TOOLS_VERSION=7.6.2
# uv installs the lock: 23-25 s on a fresh clone against 66 s with pip (links from its cache,
# ~/.cache/uv, instead of unpacking every wheel again), the same hash-checked pins.
UV_VERSION=0.11.12
DEV_LOCK=requirements-dev.lock
RUNTIME_LOCK=requirements.lock

relock() {
  local tools=${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/pip-tools
  if [ ! -x "$tools/bin/pip-compile" ]; then
    "$PY" -m venv "$tools"
    "$tools/bin/pip" install -q "pip-tools==$PIP_TOOLS_VERSION"
  fi
  local compile=("$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe
                 --no-emit-find-links --no-emit-index-url
                 --constraint hack/lock-constraints.txt "$@")
  export CUSTOM_COMPILE_COMMAND="bash hack/bootstrap.sh --lock"  # the command the header names
  echo "bootstrap: resolving $DEV_LOCK and $RUNTIME_LOCK from pyproject.toml (a few minutes)" >&2
  "${compile[@]}" --extra dev --output-file "$DEV_LOCK" pyproject.toml
  # The runtime lock is constrained by the dev lock: the image runs what the tests ran.
  "${compile[@]}" --constraint "$DEV_LOCK" --extra all --output-file "$RUNTIME_LOCK" pyproject.toml
}

case "${1:-}" in
  "") ;;
  --lock) relock ;;
  --upgrade-lock) relock --upgrade ;;
  *) echo "usage: bash hack/bootstrap.sh [--lock | --upgrade-lock]" >&2; exit 2 ;;
esac

uv_bin() {
  local tools=${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/uv-$UV_VERSION
  if [ ! -x "$tools/bin/uv" ]; then
    rm -rf "$tools"
    "$PY" -m venv "$tools"
    "$tools/bin/pip" install -q "uv==$UV_VERSION"
  fi
  echo "$tools/bin/uv"
}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.jobq-installed
# Reinstall when pyproject.toml, the lock or the set of package files changed (strict editable
# installs link files one by one, so a new module needs a reinstall).
want=$( (cat pyproject.toml "$DEV_LOCK"; find jobq api worker operator -name '*.py' -o -name '*.lua' -o -name '*.html' -o -name '*.js' -o -name '*.css' | sort) | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # Dependencies first, exactly as locked and hash-checked; then jobq itself without resolving
  # anything again, so nothing newer than the lock can slip in.
  # Bytecode is compiled at install (--compile-bytecode): with PYTHONDONTWRITEBYTECODE set, as
  # on some CI machines, every process would otherwise compile what it imports, every time.
  uv=$(uv_bin)
  # uv reads its CA bundle from SSL_CERT_FILE; a machine set up for pip alone names it in PIP_CERT.
  if [ -z "${SSL_CERT_FILE:-}" ] && [ -n "${PIP_CERT:-}" ]; then export SSL_CERT_FILE=$PIP_CERT; fi
  install=("$uv" pip install --quiet --python .venv/bin/python --no-deps --compile-bytecode)
  "${install[@]}" --require-hashes -r "$DEV_LOCK"
  # (setuptools' notice that a strict editable install links files from build/ is expected.)
  PYTHONWARNINGS="ignore:Editable installation" \
    "${install[@]}" -e . --config-setting editable_mode=strict
  "$uv" pip check --quiet --python .venv/bin/python >/dev/null \
    || { "$uv" pip check --python .venv/bin/python >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# jobq's own bytecode, which the install does not compile (its files are linked from build/):
# quick when nothing changed, and spares each of the tests' hundreds of processes recompiling.
.venv/bin/python -m compileall -q build/__editable__.jobq-*/jobq >/dev/null
