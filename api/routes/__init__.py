"""One router per resource: jobs, dlq, queues, and health (with metrics)."""
