"""The relay's Prometheus series: how many rows wait, how old the oldest is (the alert's
input: a stopped or failing relay shows as a growing age), and what each moved row became."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# Outcomes of a relayed row: a new job, one jobq already had (a re-send after a crash or by a
# second relay; harmless), or a row jobq refused (kept in the table with its error).
OUTCOMES = ("created", "duplicate", "failed")


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.pending = Gauge("jobq_outbox_pending_rows",
                             "Outbox rows committed and not yet moved into jobq.",
                             registry=self.registry)
        self.oldest_age = Gauge("jobq_outbox_oldest_age_seconds",
                                "Age of the oldest outbox row not yet moved (0 when none).",
                                registry=self.registry)
        self.failed_rows = Gauge("jobq_outbox_failed_rows",
                                 "Outbox rows jobq refused (unknown task, invalid payload), "
                                 "kept with their error.", registry=self.registry)
        self.relayed = Counter("jobq_outbox_relayed", "Outbox rows moved, by outcome.",
                               ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.relayed.labels(outcome)
