"""``jobq operator``: the Kubernetes operator (JobSchedules, worker autoscaling), via kopf."""

from __future__ import annotations

import asyncio
import sys

import click

from jobq.cli.common import EXIT_USAGE, fail, require_free_port, settings_and_registry
from jobq.cli.extras import require_extra


@click.command()
@click.option(
    "--namespace", metavar="NS", help="Namespace to watch (required unless --all-namespaces)."
)
@click.option(
    "--all-namespaces",
    is_flag=True,
    help='Watch every namespace (peering through the ClusterKopfPeering "jobq", which '
    "must exist unless --standalone).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9102,
    show_default=True,
    help="Port of /metrics and /healthz (0 = any free port, logged at start).",
)
@click.option(
    "--standalone", is_flag=True, help="No kopf peering: act even while other operators run."
)
@click.option(
    "--priority",
    type=click.IntRange(0, 2**31 - 1),
    help="Peering priority; the highest live operator acts. Default: random.",
)
def operator(
    namespace: str | None,
    all_namespaces: bool,
    metrics_port: int,
    standalone: bool,
    priority: int | None,
) -> None:
    """Fire JobSchedules and autoscale annotated worker Deployments until SIGTERM.

    Any number may run: kopf peering (KopfPeering "jobq") lets one act at a time, and every
    firing is keyed by its time bucket, so none is ever doubled. Reaches Kubernetes in-cluster
    or through KUBECONFIG, and Redis through REDIS_URL.
    """
    require_extra("jobq operator", "operator")
    if (namespace is None) == (not all_namespaces):
        fail("give exactly one of --namespace NS and --all-namespaces", EXIT_USAGE)
    from jobq.operator import OperatorOptions, run_operator

    settings, registry = settings_and_registry()
    # jobq.health serves on every address, as for a worker.
    require_free_port(metrics_port, "the operator's metrics", "--metrics-port", host="0.0.0.0")
    options = OperatorOptions(
        None if all_namespaces else namespace, metrics_port, standalone, priority
    )
    from jobq.tracing import setup

    provider = setup.provider_from_env("jobq-operator")  # global: the operator's client uses it
    code = asyncio.run(run_operator(settings, registry, options))
    setup.shutdown(provider)
    sys.exit(code)
