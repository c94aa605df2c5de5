#!/usr/bin/env bash
# Builds Jaeger's web UI (the jaeger-ui project: a Jaeger built from its Go module, as
# hack/jaeger.sh does, serves only a placeholder page) at the version that Jaeger release embeds,
# into a cache outside the repo, and prints the directory of the built assets (for the
# jaeger_query extension's `ui.assets_path`) as the LAST line of stdout (progress goes to
# stderr). Only hack/trace-picture.sh uses it, never `make test`. Idempotent: a cached build is
# kept, so only a cold cache builds (npm install and a vite build: several minutes on 2 cores).
#
# Env:
#   JOBQ_CACHE_DIR  cache root (default ~/.cache/jobq); assets go to $JOBQ_CACHE_DIR/jaeger-ui-<version>/build
#   JAEGER_UI_GIT   a git repository (URL or local path) holding the jaeger-ui tag below
#                   (default: the project's repository on GitHub)
# Needs: git, Node >= 20 with npm, and the npm registry (about 650 MB while building). Exit 3 = no usable Node/npm, 1 = failed.
set -euo pipefail

# The jaeger-ui commit that Jaeger v1.75.0 (hack/jaeger.sh) pins as its UI submodule: tag v1.74.0.
JAEGER_UI_VERSION=v1.74.0
JAEGER_UI_COMMIT=4606e0e7aba353224c0a7d1d2588366da3993f24
NODE_MIN_VERSION=20.0.0

log() { printf 'jaeger-ui: %s\n' "$*" >&2; }
die() { log "error: $1"; exit "${2:-1}"; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  die "node and npm are not on PATH; install Node >= $NODE_MIN_VERSION" 3
node_version="$(node --version)"
node_version="${node_version#v}"
if [[ "$(printf '%s\n%s\n' "$NODE_MIN_VERSION" "$node_version" | sort -V | head -n1)" != "$NODE_MIN_VERSION" ]]; then
  die "Node $node_version is older than $NODE_MIN_VERSION" 3
fi

cache_dir="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/jaeger-ui-$JAEGER_UI_VERSION"
assets="$cache_dir/build"
mkdir -p "$cache_dir"
if command -v flock >/dev/null 2>&1; then  # one build at a time per version
  exec 9>"$cache_dir/.lock"
  flock 9
fi
if [[ ! -f "$assets/index.html" ]]; then
  started=$SECONDS
  src="$cache_dir/src"
  repo="${JAEGER_UI_GIT:-https://github.com/jaegertracing/jaeger-ui.git}"
  if [[ "$(git -C "$src" rev-parse -q --verify HEAD 2>/dev/null)" != "$JAEGER_UI_COMMIT" ]]; then
    log "fetching jaeger-ui $JAEGER_UI_VERSION from $repo"
    rm -rf "$src"
    git init -q "$src"
    git -C "$src" fetch -q --depth 1 "$repo" "refs/tags/$JAEGER_UI_VERSION:refs/tags/$JAEGER_UI_VERSION" ||
      die "cannot fetch tag $JAEGER_UI_VERSION from $repo (set JAEGER_UI_GIT to a copy of the repository)"
    got="$(git -C "$src" rev-parse "refs/tags/$JAEGER_UI_VERSION^{commit}")"
    [[ "$got" == "$JAEGER_UI_COMMIT" ]] || die "tag $JAEGER_UI_VERSION is $got, expected $JAEGER_UI_COMMIT"
    git -C "$src" -c advice.detachedHead=false checkout -q "$JAEGER_UI_COMMIT"
  fi
  log "building jaeger-ui $JAEGER_UI_VERSION in $src (several minutes on 2 cores; later runs reuse it)"
  # `npm install`, not `npm ci`: npm 11 finds the tag's lock file (written by an older npm)
  # out of sync over optional platform packages only; install keeps every locked version and
  # adds those. No install scripts (the root's `prepare` sets up git hooks and builds plexus,
  # done below).
  (cd "$src" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >&2 &&
    npm run --workspace packages/plexus build >&2 &&
    npm run --workspace packages/jaeger-ui build >&2) || die "building jaeger-ui failed"
  [[ -f "$src/packages/jaeger-ui/build/index.html" ]] || die "the build left no index.html"
  rm -rf "$assets"
  mv "$src/packages/jaeger-ui/build" "$assets"
  rm -rf "$src"  # the sources and node_modules (about 650 MB); the assets are 9 MB
  log "built in $((SECONDS - started))s"
fi
echo "$assets"
