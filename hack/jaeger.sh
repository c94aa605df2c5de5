#!/usr/bin/env bash
# Builds the Jaeger v2 binary (all-in-one: OTLP receiver, memory storage, query API) pinned below
# from its Go module into a cache outside the repo and prints its path as the LAST line of stdout
# (progress goes to stderr). The tracing test (tests/test_tracing_jaeger.py) runs it. Idempotent:
# a cached binary is kept, so only a cold cache builds (about 4 minutes on 2 cores).
#
# Env:
#   JOBQ_CACHE_DIR   cache root (default ~/.cache/jobq); the binary goes to $JOBQ_CACHE_DIR/jaeger-<version>/jaeger
# Needs: Go >= 1.25 and the Go module proxy. Exit 3 = no usable Go, 1 = build failed.
set -euo pipefail

# github.com/jaegertracing/jaeger/cmd/jaeger; newer tags are served but are not releases.
JAEGER_VERSION=v1.75.0
GO_MIN_VERSION=1.25.0

log() { printf 'jaeger: %s\n' "$*" >&2; }
die() { log "error: $1"; exit "${2:-1}"; }

command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go >= $GO_MIN_VERSION" 3
go_version="$(go env GOVERSION)"
go_version="${go_version#go}"
if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -n1)" != "$GO_MIN_VERSION" ]]; then
  die "Go $go_version is older than $GO_MIN_VERSION" 3
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off

cache_dir="${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/jaeger-$JAEGER_VERSION"
bin="$cache_dir/jaeger"
mkdir -p "$cache_dir"
if command -v flock >/dev/null 2>&1; then  # one build at a time per version
  exec 9>"$cache_dir/.lock"
  flock 9
fi
if [[ ! -x "$bin" ]]; then
  started=$SECONDS
  rm -rf "$cache_dir"/out.*  # left by an interrupted run
  out="$(mktemp -d "$cache_dir/out.XXXXXX")"
  log "building jaeger $JAEGER_VERSION into $cache_dir (about 4 minutes on 2 cores; later runs reuse it)"
  # Jaeger's go.mod has replace directives, so `go install pkg@version` refuses it; as a tool
  # of a helper module of its own those are ignored and its requirements resolve as published.
  mod="$cache_dir/src"
  mkdir -p "$mod"
  printf 'module jobq.invalid/jaeger-tool\n\ngo %s\n' "$go_version" >"$mod/go.mod"
  (cd "$mod" && GOFLAGS=-mod=mod go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" &&
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger) ||
    die "building jaeger failed"
  mv -f "$out/jaeger" "$bin"
  rm -rf "$out"
  log "built in $((SECONDS - started))s"
fi
echo "$bin"
