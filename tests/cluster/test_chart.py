"""The Helm chart: lint and schema-valid renders offline; against the real API server, an install
whose every object exists, CRDs with CEL rules that refuse a bad JobSchedule, the example
manifests accepted, and an uninstall that leaves nothing behind (nothing stuck Terminating)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .controlplane import CommandError, ControlPlane, wait_until

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobq"
MANIFESTS = REPO / "manifests"
VALUE_FILES = [None, *sorted((CHART / "ci").glob("*.yaml"))]
# Kinds the Kubernetes schemas do not know (CRD-defined), left out of schema validation.
NOT_IN_SCHEMAS = {"ServiceMonitor", "PrometheusRule", "KopfPeering", "JobSchedule"}
# The oldest version the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CEL_MESSAGE = "exactly one of spec.every or spec.schedule must be set"
# Small installs: one API pod, one operator pod, Redis without a volume.
SMALL = ["--set", "api.replicas=1", "--set", "operator.replicas=1",
         "--set", "redis.persistence.enabled=false"]


def _helm(bin_dir: Path, *args: str | Path) -> str:
    result = subprocess.run([str(bin_dir / "helm"), *map(str, args)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"helm {args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: "default" if v is None else v.stem)
def test_chart_lints_and_renders_schema_valid_objects(k8s_bin_dir: Path, values: Path | None) -> None:
    """Offline: `helm lint --strict`, then every rendered object against the Kubernetes schemas
    (strict: unknown fields are errors) of the oldest supported and the newest version."""
    extra = [] if values is None else ["-f", values]
    _helm(k8s_bin_dir, "lint", "--strict", CHART, *extra)
    if values is not None and "monitoring" in values.stem:
        extra += ["--api-versions", "monitoring.coreos.com/v1"]
    for version in KUBE_VERSIONS:
        rendered = _docs(_helm(k8s_bin_dir, "template", "jq", CHART, "--namespace", "jq",
                               "--include-crds", "--kube-version", version, *extra))
        kinds = {doc["kind"] for doc in rendered}
        assert {"CustomResourceDefinition", "Deployment", "Service"} <= kinds
        if values is not None and "monitoring" in values.stem:
            assert {"ServiceMonitor", "PrometheusRule"} <= kinds
        for doc in rendered:
            if doc["kind"] in NOT_IN_SCHEMAS:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} @ {version}: {exc}")


# --- against the API server ---


def _manifest_objects(plane: ControlPlane, release: str, namespace: str) -> list[dict[str, Any]]:
    return _docs(plane.helm("get", "manifest", release, "--namespace", namespace).stdout)


def _exists(plane: ControlPlane, obj: dict[str, Any], namespace: str) -> bool:
    """Whether the object is in the cluster (kubectl ignores --namespace for cluster-scoped)."""
    group, _, _ = obj["apiVersion"].rpartition("/")
    resource = obj["kind"].lower() + (f".{group}" if group else "")
    got = plane.kubectl("get", resource, obj["metadata"]["name"], "--namespace", namespace,
                        "-o", "name", check=False)
    return got.returncode == 0


def _schedule(name: str, **spec: Any) -> str:
    body = {"apiVersion": "jobq.io/v1", "kind": "JobSchedule", "metadata": {"name": name},
            "spec": {"type": "noop", "payload": {"n": 1}, **spec}}
    return json.dumps(body)


def test_install_apply_refuse_and_uninstall_cleanly(control_plane: ControlPlane) -> None:
    plane = control_plane
    ns = f"chart-{uuid.uuid4().hex[:6]}"
    release = "jq"
    plane.kubectl("create", "namespace", ns)
    wait_flags = ["--wait", "--timeout", "180s"] if plane.node_name else []
    plane.helm("install", release, CHART, "--namespace", ns, *SMALL, *wait_flags, timeout_s=240)

    # The CRDs are served, and every object of the release exists.
    for crd in ("jobschedules.jobq.io", "kopfpeerings.kopf.dev"):
        plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    objects = _manifest_objects(plane, release, ns)
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
            "KopfPeering", "Secret", "StatefulSet"} <= {o["kind"] for o in objects}
    missing = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if not _exists(plane, o, ns)]
    assert not missing, f"rendered but not in the cluster: {missing}"

    # The example JobSchedules are accepted as they are.
    applied = plane.kubectl("apply", "--namespace", ns, "-f", MANIFESTS).stdout
    examples = sorted(doc["metadata"]["name"] for path in MANIFESTS.glob("*.yaml")
                      for doc in _docs(path.read_text()) if doc["kind"] == "JobSchedule")
    assert examples and all(f"jobschedule.jobq.io/{name} created" in applied for name in examples)

    # Both triggers, or neither: refused by the API server's CEL rule, with its message.
    for bad in (_schedule("both", every="5m", schedule="* * * * *"), _schedule("neither")):
        with pytest.raises(CommandError) as refused:
            plane.kubectl("apply", "--namespace", ns, "-f", "-", input=bad)
        assert CEL_MESSAGE in refused.value.result.stderr
    # Bounds are checked too.
    with pytest.raises(CommandError) as refused:
        plane.kubectl("apply", "--namespace", ns, "-f", "-", input=_schedule("x", every="25h"))
    assert "spec.every must be between 1s and 24h" in refused.value.result.stderr
    assert plane.kubectl("get", "jobschedules", "--namespace", ns, "-o", "name").stdout.split() \
        == [f"jobschedule.jobq.io/{name}" for name in examples]

    # Uninstall (no operator runs now, as after a real `helm uninstall`), then the namespace:
    # nothing of the release is left, and no JobSchedule hangs on a finalizer.
    plane.helm("uninstall", release, "--namespace", ns, "--wait", "--timeout", "120s",
               timeout_s=180)
    leftovers = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if _exists(plane, o, ns)]
    assert not leftovers, f"left after helm uninstall: {leftovers}"
    labelled = plane.kubectl(
        "get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,"
        "poddisruptionbudgets,kopfpeerings", "--namespace", ns,
        "-l", f"app.kubernetes.io/instance={release}", "-o", "name",
    ).stdout.split()
    assert not [name for name in labelled if not name.startswith("pod/")], labelled
    schedules = json.loads(plane.kubectl("get", "jobschedules", "--namespace", ns, "-o",
                                         "json").stdout)["items"]
    assert all(not s["metadata"].get("finalizers") for s in schedules)
    plane.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", timeout_s=150)
    wait_until(
        lambda: plane.kubectl("get", "namespace", ns, check=False).returncode != 0,
        what=f"namespace {ns} to be gone", timeout_s=60,
    )


@pytest.mark.parametrize(("termination", "renders"), [(34, False), (35, True)])
def test_chart_needs_room_for_the_workers_watchdog(
    k8s_bin_dir: Path, termination: int, renders: bool
) -> None:
    """SIGKILL must not beat the worker's hand-back: terminationGracePeriodSeconds is at least the
    shutdown grace + 10 s (the worker's watchdog ends a stuck shutdown at grace + 8 s)."""
    result = subprocess.run(
        [str(k8s_bin_dir / "helm"), "template", "jq", str(CHART), "--set",
         "worker.shutdownGraceSeconds=25", "--set",
         f"worker.terminationGracePeriodSeconds={termination}"],
        capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) is renders, result.stderr
    if not renders:
        assert "must be at least shutdownGraceSeconds + 10 (35)" in result.stderr


@pytest.mark.parametrize(("sleep", "termination", "renders"), [(5, 35, True), (26, 35, False)])
def test_api_pods_keep_serving_until_their_endpoint_is_gone(
    k8s_bin_dir: Path, sleep: int, termination: int, renders: bool
) -> None:
    """A terminating API pod sleeps in preStop before uvicorn stops listening, so an Ingress
    controller drops the endpoint first; the sleep plus the 10 s request drain must fit before
    SIGKILL, and 0 turns the hook off."""
    args = [str(k8s_bin_dir / "helm"), "template", "jq", str(CHART),
            "--set", f"api.preStopSleepSeconds={sleep}",
            "--set", f"worker.terminationGracePeriodSeconds={termination}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) is renders, result.stderr
    if not renders:
        assert f"api.preStopSleepSeconds ({sleep}) + the API's 10 s request drain" in result.stderr
        return

    def api_container(text: str) -> dict[str, Any]:
        [api] = [d for d in _docs(text) if d["kind"] == "Deployment"
                 and d["metadata"]["name"] == "jq-jobq-api"]
        container: dict[str, Any] = api["spec"]["template"]["spec"]["containers"][0]
        return container

    assert api_container(result.stdout)["lifecycle"] == {"preStop": {"sleep": {"seconds": sleep}}}
    off = _helm(k8s_bin_dir, "template", "jq", CHART, "--set", "api.preStopSleepSeconds=0")
    assert "lifecycle" not in api_container(off)


def _env_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for c in doc["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])]


def test_external_redis_cluster_values_reach_every_jobq_container(k8s_bin_dir: Path) -> None:
    """externalRedis.cluster/tls/passwordSecret and config.ackReplicas become JOBQ_REDIS_CLUSTER,
    JOBQ_REDIS_TLS, JOBQ_REDIS_PASSWORD (from its Secret) and JOBQ_ACK_REPLICAS in the API,
    worker and operator pods; no bundled Valkey is rendered."""
    values = CHART / "ci" / "external-redis-cluster-values.yaml"
    rendered = _docs(_helm(k8s_bin_dir, "template", "jq", CHART, "-f", values))
    deployments = [d for d in rendered if d["kind"] == "Deployment"]
    assert deployments and not [d for d in rendered if d["kind"] == "StatefulSet"]
    for doc in deployments:
        env = {e["name"]: e for e in _env_of(doc)}
        assert env["JOBQ_REDIS_CLUSTER"]["value"] == "true", doc["metadata"]["name"]
        assert env["JOBQ_REDIS_TLS"]["value"] == "true"
        assert env["JOBQ_ACK_REPLICAS"]["value"] == "1"
        assert env["JOBQ_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis-cluster-password", "key": "password"}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis-cluster-url", "key": "url"}


def test_a_cluster_needs_an_external_redis(k8s_bin_dir: Path) -> None:
    """The bundled Valkey is single-node: asking for a cluster with it is refused at render."""
    result = subprocess.run(
        [str(k8s_bin_dir / "helm"), "template", "jq", str(CHART), "--set",
         "externalRedis.cluster=true"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "externalRedis.cluster=true needs redis.enabled=false" in result.stderr


def test_default_values_wait_for_no_replica(k8s_bin_dir: Path) -> None:
    rendered = _docs(_helm(k8s_bin_dir, "template", "jq", CHART))
    for doc in (d for d in rendered if d["kind"] == "Deployment"):
        env = {e["name"]: e for e in _env_of(doc)}
        assert env["JOBQ_ACK_REPLICAS"]["value"] == "0"
        assert "JOBQ_REDIS_CLUSTER" not in env


@pytest.mark.timeout(300)
def test_a_queue_rate_limit_reaches_only_that_queues_workers(
    k8s_bin_dir: Path, tmp_path: Path
) -> None:
    """``queues[].rateLimit`` becomes JOBQ_QUEUE_RATE_LIMITS on that queue's worker pods (the
    limit holds across all of them in Redis); a malformed one is refused by the schema."""
    queues = yaml.safe_load((CHART / "values.yaml").read_text())["queues"]

    def values(rate: str) -> Path:
        path = tmp_path / f"{uuid.uuid4().hex}.yaml"
        path.write_text(yaml.safe_dump({"queues": [{**queues[0], "rateLimit": rate},
                                                   *queues[1:]]}))
        return path

    docs = _docs(_helm(k8s_bin_dir, "template", "jq", CHART, "-f", values("10/1s")))
    env_of = {
        d["metadata"]["name"]: {e["name"]: e.get("value")
                                for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]
    }
    limited = {name: env.get("JOBQ_QUEUE_RATE_LIMITS") for name, env in env_of.items()}
    assert limited == {"jq-jobq-worker-email-queue": "email-queue=10/1s",
                       "jq-jobq-worker-report-queue": None,
                       "jq-jobq-worker-cleanup-queue": None}, limited
    bad = subprocess.run([str(k8s_bin_dir / "helm"), "template", "jq", str(CHART), "-f",
                          str(values("ten per second"))],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "rateLimit" in bad.stderr, bad.stderr


def _valkey_args(text: str) -> list[str]:
    [redis] = [d for d in _docs(text) if d["kind"] == "StatefulSet"]
    args: list[str] = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize(("sets", "fsync", "maxmemory"), [
    ([], "always", str(512 * 2**20 * 4 // 5)),  # the defaults: 80 % of the 512Mi limit
    (["--set", "redis.resources.limits.memory=2Gi"], "always", str(2 * 2**30 * 4 // 5)),
    (["--set", "redis.resources.limits.memory=1000M"], "always", "800000000"),
    (["--set", "redis.maxmemory=300mb", "--set", "redis.appendfsync=everysec"], "everysec",
     "300mb"),
])
def test_bundled_valkey_is_durable_and_refuses_writes_before_its_memory_limit(
    k8s_bin_dir: Path, sets: list[str], fsync: str, maxmemory: str,
) -> None:
    """Every write fsynced before it is answered (unless everysec is chosen), and a maxmemory
    below the container's limit with noeviction: writes are refused (503) instead of the
    process being OOM-killed with acknowledged writes unsynced."""
    args = _valkey_args(_helm(k8s_bin_dir, "template", "jq", CHART, *sets))
    assert _flag(args, "--appendonly") == "yes"
    assert _flag(args, "--appendfsync") == fsync
    assert _flag(args, "--maxmemory") == maxmemory
    assert _flag(args, "--maxmemory-policy") == "noeviction"
    assert _flag(args, "--dir") == "/data"


def test_valkey_without_a_memory_limit_needs_an_explicit_maxmemory(k8s_bin_dir: Path) -> None:
    base = [str(k8s_bin_dir / "helm"), "template", "jq", str(CHART),
            "--set", "redis.resources.limits=null"]
    result = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "set redis.maxmemory" in result.stderr, result.stderr
    args = _valkey_args(_helm(k8s_bin_dir, "template", "jq", CHART, "--set",
                              "redis.resources.limits=null", "--set-string",
                              "redis.maxmemory=0"))
    assert _flag(args, "--maxmemory") == "0"
    bad = subprocess.run([*base, "--set", "redis.appendfsync=no"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "appendfsync" in bad.stderr, bad.stderr


def test_operator_may_write_only_the_worker_deployments(k8s_bin_dir: Path) -> None:
    """The operator's Role: get/patch (and patch of the scale subresource) on the worker
    Deployments by name, and on autoscaling.extraDeployments; list/watch (which RBAC cannot
    narrow by name) write nothing; pods only list and patch (deletion-cost annotations)."""
    def rules(*sets: str) -> list[dict[str, Any]]:
        [role] = [d for d in _docs(_helm(k8s_bin_dir, "template", "jq", CHART, *sets))
                  if d["kind"] == "Role" and d["metadata"]["name"] == "jq-jobq-operator"]
        found: list[dict[str, Any]] = role["rules"]
        return found

    workers = ["jq-jobq-worker-email-queue", "jq-jobq-worker-report-queue",
               "jq-jobq-worker-cleanup-queue"]
    for extra, names in (([], workers), (["--set", "autoscaling.extraDeployments={mine}"],
                                         [*workers, "mine"])):
        apps = [r for r in rules(*extra) if r["apiGroups"] == ["apps"]]
        assert apps == [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": names,
             "verbs": ["get", "patch"]},
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": names,
             "verbs": ["patch"]},
        ], apps
    pods = [r for r in rules() if "pods" in r["resources"]]
    assert pods == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "patch"]}]
    everything = [r for r in rules() if "*" in r["verbs"] or "*" in r["resources"]]
    assert not everything


def _api_env(text: str) -> dict[str, str]:
    [api] = [d for d in _docs(text) if d["kind"] == "Deployment"
             and d["metadata"]["name"] == "jq-jobq-api"]
    return {e["name"]: e.get("value", "") for e in _env_of(api)}


def test_the_api_answers_its_service_and_ingress_names_only(k8s_bin_dir: Path) -> None:
    """JOBQ_API_ALLOWED_HOSTS: the Service's in-cluster names (the helm test pod calls
    http://<fullname>-api:8000), localhost for port-forward, the Ingress hosts and
    api.allowedHosts; a host-less Ingress rule matches any host, so it allows "*". (Probes and
    Prometheus send the pod's IP, which the API always accepts.)"""
    service = ["jq-jobq-api", "jq-jobq-api.jq", "jq-jobq-api.jq.svc",
               "jq-jobq-api.jq.svc.cluster.local"]
    plain = _api_env(_helm(k8s_bin_dir, "template", "jq", CHART, "--namespace", "jq"))
    assert plain["JOBQ_API_ALLOWED_HOSTS"].split(",") == ["localhost", *service]
    ingress = _api_env(_helm(k8s_bin_dir, "template", "jq", CHART, "--namespace", "jq", "-f",
                             CHART / "ci" / "ingress-monitoring-values.yaml",
                             "--set", "api.allowedHosts={jobq.lb.example,*.corp.example}"))
    assert ingress["JOBQ_API_ALLOWED_HOSTS"].split(",") == [
        "localhost", *service, "jobq.example.com", "jobq.lb.example", "*.corp.example"]
    any_host = _api_env(_helm(k8s_bin_dir, "template", "jq", CHART, "--namespace", "jq",
                              "--set", "ingress.enabled=true",
                              "--set", "ingress.hosts[0].paths[0].path=/",
                              "--set", "ingress.hosts[0].paths[0].pathType=Prefix"))
    assert "*" in any_host["JOBQ_API_ALLOWED_HOSTS"].split(",")


def test_the_api_service_monitor_sends_a_token_when_auth_is_on(k8s_bin_dir: Path) -> None:
    """/metrics needs the token with auth on: the API ServiceMonitor reads one token from a
    Secret (the chart's metrics-token key, the first of api.auth.tokens; existingSecret's key;
    or metrics.serviceMonitor.tokenSecret); without auth it sends none."""
    monitoring = ["--api-versions", "monitoring.coreos.com/v1",
                  "--set", "metrics.serviceMonitor.enabled=true"]

    def api_endpoint(*sets: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        docs = _docs(_helm(k8s_bin_dir, "template", "jq", CHART, *monitoring, *sets))
        [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"
                     and d["metadata"]["name"] == "jq-jobq-api"]
        [endpoint] = monitor["spec"]["endpoints"]
        return endpoint, docs

    endpoint, _ = api_endpoint()
    assert "authorization" not in endpoint
    endpoint, docs = api_endpoint("--set", "api.auth.tokens={first,second}")
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
        "name": "jq-jobq-api-tokens", "key": "metrics-token"}}
    [secret] = [d for d in docs if d["kind"] == "Secret"
                and d["metadata"]["name"] == "jq-jobq-api-tokens"]
    assert secret["stringData"] == {"tokens": "first,second", "metrics-token": "first"}
    endpoint, _ = api_endpoint("--set", "api.auth.existingSecret=mine",
                               "--set", "api.auth.existingSecretKey=t")
    assert endpoint["authorization"]["credentials"] == {"name": "mine", "key": "t"}
    endpoint, _ = api_endpoint("--set", "api.auth.existingSecret=mine",
                               "--set", "metrics.serviceMonitor.tokenSecret.name=prom",
                               "--set", "metrics.serviceMonitor.tokenSecret.key=k")
    assert endpoint["authorization"]["credentials"] == {"name": "prom", "key": "k"}
    # The Ingress reaches the API only through its http port, where /metrics needs the token.
    ingress = [d for d in _docs(_helm(k8s_bin_dir, "template", "jq", CHART, "-f",
                                      CHART / "ci" / "ingress-monitoring-values.yaml"))
               if d["kind"] == "Ingress"]
    backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
                for i in ingress for r in i["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {("jq-jobq-api", "http")}
    assert "JOBQ_API_TOKENS" in _api_env(_helm(k8s_bin_dir, "template", "jq", CHART, "-f",
                                               CHART / "ci" / "ingress-monitoring-values.yaml"))
