"""Configuration from the environment and `.env`: one object, built in main(), passed down.

``Settings(...)`` takes values as given; ``load_settings()`` reads them from the environment
and ``.env`` (``jobq.environment``), as every jobq process does."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from jobq import keys
from jobq.environment import read_environment
from jobq.errors import ConfigError
from jobq.flow import parse_queue_rates

ENV_PREFIX = "JOBQ_"
# Variables under the prefix that belong to tooling, not to a process's settings.
# JOBQ_DEMO_* are the demo tasks' own settings (jobq.demo.DemoSettings).
_NOT_SETTINGS = ("JOBQ_TEST_", "JOBQ_CACHE_DIR", "JOBQ_K8S_", "JOBQ_DEMO_")


class Settings(BaseModel):
    """Every knob of every jobq process; each field is the env var ``JOBQ_<NAME>`` (lists are
    comma-separated), ``redis_url`` is ``REDIS_URL``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    redis_cluster: bool = False
    """The URL names one node of a Redis Cluster (same as a ``redis+cluster://`` URL)."""
    redis_tls: bool = False
    """Connect with TLS whatever the URL's scheme says (same as ``rediss://``)."""
    redis_password: SecretStr | None = None
    """Password for Redis when the URL carries none (e.g. from its own Kubernetes Secret)."""
    redis_url: str = Field("redis://localhost:6379/0", validation_alias="REDIS_URL")
    """Where Redis is (``REDIS_URL``; may carry a password; ``rediss://`` for TLS;
    ``redis+cluster://`` / ``rediss+cluster://`` naming any node of a Redis Cluster). The three
    settings above are folded into it, so every process reads one URL."""
    ack_replicas: int = Field(0, ge=0, le=16)
    """Replicas that must confirm each write that must not be lost (enqueue, replay, a job's
    end) before it counts as done (Redis ``WAIT``); 0 = do not wait."""
    ack_timeout_s: float = Field(keys.ACK_TIMEOUT_S, gt=0, le=60)
    """Seconds a write waits for ``ack_replicas`` confirmations; the API answers 503 after."""
    tasks: list[str] = []
    """Modules whose import registers tasks (comma-separated), e.g. ``jobq.demo``; no default:
    a process that runs or creates jobs refuses to start without it."""
    api_tokens: list[str] = []
    """Bearer tokens the API accepts (comma-separated); empty = no auth."""
    api_allowed_hosts: list[str] = list(keys.API_ALLOWED_HOSTS)
    """Host names the API answers (comma-separated; ``*.example.com`` for subdomains, ``*`` for
    any); other ``Host`` headers get 400, so a DNS-rebinding page cannot drive the API. IP
    addresses are always accepted (rebinding needs a name; probes send the pod's IP)."""
    max_body_bytes: int = Field(keys.MAX_BODY_BYTES, gt=0)
    """Largest request body the API reads, in bytes (413 above it)."""
    key_prefix: str = Field(keys.DEFAULT_PREFIX, pattern=r"^[A-Za-z0-9_.-]+$")
    """Prefix of every Redis key."""
    idempotency_retention_s: int = Field(keys.IDEMPOTENCY_RETENTION_S, gt=0)
    """Seconds an idempotency key is remembered (R2)."""
    workflow_retention_s: int = Field(keys.WORKFLOW_RETENTION_S, gt=0)
    """Seconds every key of a workflow lives on after it ended (its nodes' results, states
    and idempotency); then all of them expire (R24)."""
    workflow_poll_s: float = Field(keys.WORKFLOW_POLL_S, gt=0)
    """How often an idle worker looks at its queues' workflow outboxes (seconds): the most a
    dependent's release waits for (R24), when no wake-up reaches the relay."""
    workflow_wake: bool = True
    """Relays block on their queue's outbox wake list, which a node's finish pushes to, so a
    dependent is released about a millisecond after its dependency ends instead of at the
    next poll (one more connection per queue per worker). Off: they only poll."""
    lease_s: float = Field(keys.LEASE_S, gt=0)
    """Lease length in seconds; a crashed worker's job is taken back after it (R4)."""
    shutdown_grace_s: float = Field(keys.SHUTDOWN_GRACE_S, ge=0)
    """Seconds running jobs get to finish on SIGTERM before being handed back (R9)."""
    max_handbacks: int = Field(keys.MAX_HANDBACKS, ge=0)
    """Hand-backs a job gets without spending an attempt; each later one spends one (outcome
    ``interrupted``), so a job longer than the grace cannot be handed back for ever. 0 = no
    limit."""
    completed_keep: int = Field(keys.COMPLETED_KEEP, ge=0)
    """Completed job records kept per queue (R12)."""
    completed_max_age_s: int = Field(keys.COMPLETED_MAX_AGE_S, gt=0)
    """Seconds a completed job record is kept at most (R12)."""
    failed_keep: int = Field(keys.FAILED_KEEP, ge=0)
    """Failed job records kept per queue; DLQ entries are kept apart (R12)."""
    failed_max_age_s: int = Field(keys.FAILED_MAX_AGE_S, gt=0)
    """Seconds a failed job record is kept at most (R12)."""
    dlq_max_age_s: int = Field(keys.DLQ_MAX_AGE_S, ge=0)
    """Seconds a DLQ entry is kept (with its replay log); 0 keeps entries forever."""
    status_wait_max_s: float = Field(keys.STATUS_WAIT_MAX_S, ge=0)
    """Longest long poll of ``GET /jobs/{id}/status?wait=``, in seconds (a longer wait is cut)."""
    events_max_s: float = Field(keys.EVENTS_MAX_S, gt=0)
    """Seconds a ``GET /jobs/{id}/events`` stream lasts at most before the API ends it (the
    client reconnects); keep it under proxies' read timeouts only if they cut long streams."""
    events_heartbeat_s: float = Field(keys.EVENTS_HEARTBEAT_S, gt=0)
    """Seconds between SSE heartbeat comments on an idle event stream (keeps proxies open)."""
    queue_rate_limits: list[str] = []
    """Per-queue rate limits, comma-separated ``<queue>=<starts>/<period>`` (``ms|s|m|h``), e.g.
    ``email-queue=10/1s``: at most that many jobs of the queue start in any such window, across
    every worker (R17). Give every worker of a queue the same value (the chart does)."""
    executor: Literal["thread", "process"] = "thread"
    """Where handlers of tasks that do not choose run: ``thread`` (in the worker: sync handlers
    on threads, async ones on its event loop) or ``process`` (a pool of child processes)."""
    children: int = Field(0, ge=0, le=1024)
    """Child processes per queue for the process executor; 0 = the queue's concurrency."""
    kill_after_s: float = Field(2.0, gt=0)
    """Process executor: seconds after a job's (soft) timeout before its child is killed."""
    child_max_jobs: int = Field(0, ge=0)
    """Process executor: jobs a child runs before it is replaced; 0 = no limit."""
    child_max_rss_mb: int = Field(0, ge=0)
    """Process executor: a child whose memory (RSS) passed this after a job is replaced."""
    max_jobs: int = Field(0, ge=0)
    """Worker recycling: after this many jobs the worker stops claiming, finishes or hands back
    what runs and exits 0 (Kubernetes restarts it); 0 = never."""
    max_rss_mb: int = Field(0, ge=0)
    """Worker recycling: the same once the worker's own memory (RSS) passes this; 0 = never."""
    ui: bool = True
    """Serve the dashboard under /ui (false: the API only)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest log level written."""
    log_format: Literal["json", "console", "structlog"] = "json"
    """JSON lines for machines, coloured console lines for people, or ``structlog``: jobq leaves
    structlog unconfigured and its lines follow the application's own ``structlog.configure``
    (e.g. in the tasks module)."""
    trace_propagation: Literal["link", "child", "none"] = "link"
    """How a worker's ``process`` span relates to its job's creation context (R25): a link
    (one trace per attempt, the messaging conventions' default), its child (one trace from the
    request through every attempt), or neither. A task's ``trace_propagation`` overrides it."""

    @field_validator("redis_url")
    @classmethod
    def _fold_redis_options(cls, url: str, info: ValidationInfo) -> str:
        return effective_redis_url(url, cluster=bool(info.data.get("redis_cluster")),
                                   tls=bool(info.data.get("redis_tls")),
                                   password=info.data.get("redis_password"))

    @field_validator("tasks", "api_tokens", "api_allowed_hosts", "queue_rate_limits",
                     mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("queue_rate_limits")
    @classmethod
    def _rates_parse(cls, value: list[str]) -> list[str]:
        try:
            parse_queue_rates(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def effective_redis_url(
    url: str, *, cluster: bool, tls: bool, password: SecretStr | None,
) -> str:
    """``url`` with the cluster and TLS flags in its scheme and the password in it when it has
    none: ``redis://h:6379`` + cluster + TLS -> ``rediss+cluster://h:6379``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    base, _, flavour = scheme.partition("+")
    if tls and base == "redis":
        base = "rediss"
    if cluster:
        flavour = "cluster"
    netloc = parts.netloc
    if password is not None and "@" not in netloc:
        netloc = f":{quote(password.get_secret_value(), safe='')}@{netloc}"
    return urlunsplit(parts._replace(scheme=f"{base}+{flavour}" if flavour else base,
                                     netloc=netloc))


def env_names() -> dict[str, str]:
    """Each setting's variable name -> its field name."""
    return {field.validation_alias if isinstance(field.validation_alias, str)
            else f"{ENV_PREFIX}{name}".upper(): name
            for name, field in Settings.model_fields.items()}


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment over ``.env`` (``overrides`` over both), refusing
    unknown ``JOBQ_*`` variables in either instead of ignoring them."""
    environment = read_environment()
    names = env_names()
    unknown = sorted(
        name
        for name in environment
        if name.startswith(ENV_PREFIX) and name not in names and not name.startswith(_NOT_SETTINGS)
    )
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)} (see .env.example)")
    values: dict[str, object] = {names[name]: value for name, value in environment.items()
                                 if name in names}
    try:
        return Settings(**{**values, **overrides})
    except ValidationError as exc:
        # Name the setting and the problem, never the value: it may be a password or a token.
        problems = "; ".join(
            f"{_env_name(e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def _env_name(loc: tuple[int | str, ...]) -> str:
    """The variable behind an error's location (``.env`` extras come with their full name)."""
    name = ".".join(map(str, loc)).upper()
    return name if name == "REDIS_URL" or name.startswith(ENV_PREFIX) else ENV_PREFIX + name
