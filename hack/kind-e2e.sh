#!/usr/bin/env bash
# End-to-end test of jobq on a throwaway kind cluster (target of `make kind-e2e`):
#   1. create the cluster from kind-config.yaml, build the image and load it into kind;
#   2. install an ingress controller (Traefik) and the jobq chart with the Ingress on;
#   3. `helm test`; POST a job through the Ingress and poll it to `completed`;
#   4. apply manifests/ and watch a scheduled job appear;
#   5. flood report-queue and watch the operator scale its worker Deployment up.
#
# Needs docker (with a running engine), kind, helm, kubectl and curl. Ports 80 and 443 on the
# host must be free (kind-config.yaml maps them into the node).
#
# Environment:
#   KIND_CLUSTER_NAME      cluster name (default jobq-e2e); an existing cluster is reused and kept
#   KEEP_CLUSTER=1         keep a cluster this script created (default: delete it on exit)
#   JOBQ_NAMESPACE         namespace of the release (default jobq)
#   JOBQ_RELEASE           release name (default jobq)
#   JOBQ_IMAGE             image repository:tag to build (default ghcr.io/jobq/jobq:kind-e2e)
#   TRAEFIK_CHART_VERSION  Traefik Helm chart version (default 41.3.0)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${KIND_CLUSTER_NAME:-jobq-e2e}
NAMESPACE=${JOBQ_NAMESPACE:-jobq}
RELEASE=${JOBQ_RELEASE:-jobq}
IMAGE=${JOBQ_IMAGE:-ghcr.io/jobq/jobq:kind-e2e}
IMAGE_REPO=${IMAGE%:*}
IMAGE_TAG=${IMAGE##*:}
TRAEFIK_CHART_VERSION=${TRAEFIK_CHART_VERSION:-41.3.0}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
HOST=jobq.local
BASE_URL=http://127.0.0.1
TOKEN="kind-e2e-$RANDOM$RANDOM"
CREATED_CLUSTER=0

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }

# --- preflight: every tool present and the Docker engine answering ---------------------------
missing=()
for tool in docker kind helm kubectl curl; do
  command -v "$tool" > /dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  die "missing tool(s): ${missing[*]}. Install docker, kind (https://kind.sigs.k8s.io), helm and kubectl, then run again."
fi
if ! docker info > /dev/null 2>&1; then
  die "docker is installed but the Docker engine does not answer (is the daemon running, and may this user use it?)."
fi
[ "$IMAGE_REPO" != "$IMAGE" ] || die "JOBQ_IMAGE must be repository:tag, got '$IMAGE'."

KUBECTL=(kubectl --context "kind-$CLUSTER")
HELM=(helm --kube-context "kind-$CLUSTER")

diagnose() {
  echo "---- diagnostics ----" >&2
  "${KUBECTL[@]}" get pods,deploy,sts,svc,ingress,jobschedules -n "$NAMESPACE" -o wide >&2 || true
  "${KUBECTL[@]}" get events -n "$NAMESPACE" --sort-by=.lastTimestamp 2>&1 | tail -n 40 >&2 || true
  for component in api operator worker; do
    "${KUBECTL[@]}" logs -n "$NAMESPACE" -l "app.kubernetes.io/component=$component" \
      --tail=40 --prefix --all-containers >&2 || true
  done
}

cleanup() {
  local rc=$?
  [ "$rc" -eq 0 ] || diagnose
  if [ "$CREATED_CLUSTER" = 1 ] && [ "$KEEP_CLUSTER" != 1 ]; then
    log "deleting kind cluster $CLUSTER (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# api METHOD PATH [BODY]: call the jobq API through the Ingress; prints the body, fails on >= 400.
api() {
  local args=(-fsS --max-time 10 -X "$1" -H "Host: $HOST" -H "Authorization: Bearer $TOKEN")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
  curl "${args[@]}" "$BASE_URL$2"
}

# json_field NAME: first string value of "NAME" in the JSON on stdin (flat API answers only).
json_field() {
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1
}

# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND every 2 s until it succeeds.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for $what"
    sleep 2
  done
}

job_state() { api GET "/jobs/$1/status" | json_field state; }
job_completed() { [ "$(job_state "$1")" = completed ]; }

# --- 1. cluster and image --------------------------------------------------------------------
if kind get clusters 2> /dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config "$ROOT/kind-config.yaml" --wait 120s
  CREATED_CLUSTER=1
fi

log "building $IMAGE and loading it into kind"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

# --- 2. ingress controller and jobq -----------------------------------------------------------
# Ingress controller: Traefik, from its official Helm chart. ingress-nginx was retired in
# March 2026; Traefik is actively maintained, serves the plain networking.k8s.io/v1 Ingress the
# jobq chart renders (no Gateway API CRDs needed), and runs as one non-root pod. It binds the
# node's ports 80/443 through hostPort on the ingress-ready node that kind maps to the host.
log "installing Traefik $TRAEFIK_CHART_VERSION"
helm repo add traefik https://traefik.github.io/charts --force-update > /dev/null
"${HELM[@]}" upgrade --install traefik traefik/traefik --version "$TRAEFIK_CHART_VERSION" \
  --namespace traefik --create-namespace --wait --timeout 5m -f - << 'VALUES'
ingressClass:
  enabled: true
  isDefaultClass: false
  name: traefik
ports:
  web:
    hostPort: 80
  websecure:
    hostPort: 443
service:
  spec:
    type: ClusterIP
nodeSelector:
  ingress-ready: "true"
tolerations:
  - key: node-role.kubernetes.io/control-plane
    operator: Exists
    effect: NoSchedule
# hostPort allows one pod per node: replace the old pod before starting the new one.
updateStrategy:
  type: RollingUpdate
  rollingUpdate:
    maxUnavailable: 1
    maxSurge: 0
VALUES

log "installing jobq (release $RELEASE, namespace $NAMESPACE)"
"${HELM[@]}" upgrade --install "$RELEASE" "$ROOT/charts/jobq" \
  --namespace "$NAMESPACE" --create-namespace --wait --timeout 10m \
  --set image.repository="$IMAGE_REPO" \
  --set image.tag="$IMAGE_TAG" \
  --set image.pullPolicy=Never \
  --set ingress.enabled=true \
  --set ingress.className=traefik \
  --set "ingress.hosts[0].host=$HOST" \
  --set "ingress.hosts[0].paths[0].path=/" \
  --set "ingress.hosts[0].paths[0].pathType=Prefix" \
  --set-string "api.auth.tokens[0]=$TOKEN"

# --- 3. helm test and a job through the Ingress -----------------------------------------------
log "helm test"
"${HELM[@]}" test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 5m

log "POST /jobs through the Ingress (Host: $HOST)"
body='{"type":"welcome-email","idempotencyKey":"kind-e2e-'"$RANDOM$RANDOM"'","payload":{"email":"e2e@example.com","name":"kind e2e"}}'
wait_until 120 "the Ingress to route to the API" api GET /readyz
answer=$(api POST /jobs "$body")
echo "$answer"
job_id=$(printf '%s' "$answer" | json_field jobId)
[ -n "$job_id" ] || die "no jobId in the answer to POST /jobs"
wait_until 120 "job $job_id to complete" job_completed "$job_id"
echo "job $job_id completed"

# --- 4. schedules -----------------------------------------------------------------------------
log "applying manifests/ (example JobSchedules)"
"${KUBECTL[@]}" apply -n "$NAMESPACE" -f "$ROOT/manifests/"
"${KUBECTL[@]}" wait -n "$NAMESPACE" --for=condition=Ready jobschedules --all --timeout=120s
"${KUBECTL[@]}" get jobschedules -n "$NAMESPACE"

# The examples fire every 5 minutes or hourly; a 10 s schedule shows a job appear quickly.
"${KUBECTL[@]}" apply -n "$NAMESPACE" -f - << 'SCHEDULE'
apiVersion: jobq.io/v1
kind: JobSchedule
metadata:
  name: kind-e2e-every-10s
spec:
  type: welcome-email
  every: 10s
  payload:
    email: schedule@example.com
    name: kind e2e schedule
SCHEDULE
last_job_id() {
  "${KUBECTL[@]}" get jobschedule kind-e2e-every-10s -n "$NAMESPACE" -o jsonpath='{.status.lastJobId}'
}
has_last_job() { [ -n "$(last_job_id)" ]; }
wait_until 120 "the operator to enqueue a scheduled job" has_last_job
scheduled_job=$(last_job_id)
echo "schedule enqueued job $scheduled_job"
wait_until 120 "scheduled job $scheduled_job to complete" job_completed "$scheduled_job"
"${KUBECTL[@]}" delete jobschedule kind-e2e-every-10s -n "$NAMESPACE"

# --- 5. autoscaling ---------------------------------------------------------------------------
# 40 slow jobs on report-queue (2 per pod, 10 jobs per replica): desired = min(ceil(40/10), 3).
log "flooding report-queue and waiting for its worker Deployment to scale up"
report_deploy=$("${KUBECTL[@]}" get deploy -n "$NAMESPACE" \
  -l "app.kubernetes.io/instance=$RELEASE,jobq.io/queue=report-queue" -o name)
[ -n "$report_deploy" ] || die "no worker Deployment for report-queue"
before=$("${KUBECTL[@]}" get "$report_deploy" -n "$NAMESPACE" -o jsonpath='{.spec.replicas}')
run=$RANDOM$RANDOM
for i in $(seq 1 40); do
  api POST /jobs '{"type":"flaky","idempotencyKey":"kind-e2e-load-'"$run-$i"'","payload":{"failTimes":0,"sleepSeconds":20}}' > /dev/null
done
scaled_up() {
  [ "$("${KUBECTL[@]}" get "$report_deploy" -n "$NAMESPACE" -o jsonpath='{.spec.replicas}')" -gt "$before" ]
}
wait_until 180 "$report_deploy to scale above $before replicas" scaled_up
"${KUBECTL[@]}" get "$report_deploy" -n "$NAMESPACE"
"${KUBECTL[@]}" get events -n "$NAMESPACE" --field-selector "involvedObject.kind=Deployment" | tail -n 5

log "kind e2e passed"
