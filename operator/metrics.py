"""The operator's Prometheus metrics (listed in docs/operations.md, Monitoring); served by
jobq.health with /healthz."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge


class OperatorMetrics:
    """Desired and current replicas per queue, schedule firings, reconcile errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.desired_replicas = Gauge(
            "jobq_operator_desired_replicas",
            "Replicas the backlog asks for, within the Deployment's min and max.",
            ("queue",),
            registry=r,
        )
        self.current_replicas = Gauge(
            "jobq_operator_current_replicas",
            "Replicas the worker Deployment is set to.",
            ("queue",),
            registry=r,
        )
        self.schedule_firings = Counter(
            "jobq_operator_schedule_firings",
            "JobSchedule firings; result=duplicate when the bucket's job already existed.",
            ("namespace", "name", "result"),
            registry=r,
        )
        self.reconcile_errors = Counter(
            "jobq_operator_reconcile_errors",
            "Failed evaluations of a JobSchedule or a worker Deployment.",
            ("kind",),
            registry=r,
        )
        self.leader = Gauge(
            "jobq_operator_leader", "1 while this operator acts, 0 while a peer does.", registry=r
        )

    def forget_queue(self, queue: str) -> None:
        for gauge in (self.desired_replicas, self.current_replicas):
            with contextlib.suppress(KeyError):
                gauge.remove(queue)
