"""``jobq api``: serve the HTTP API with uvicorn, one worker process (scale with replicas)."""

from __future__ import annotations

import click

from jobq.cli.common import require_free_port, settings_and_registry
from jobq.cli.extras import require_extra
from jobq.logs import get_logger

GRACEFUL_SHUTDOWN_S = 10  # in-flight requests get this long to finish on SIGTERM


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 in a container).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port to listen on.")
@click.option("--root-path", default="", metavar="PREFIX",
              help="Path prefix an Ingress serves the API under (it strips it before passing "
                   "requests on); the dashboard builds its links with it.")
def api(host: str, port: int, root_path: str) -> None:
    """Serve the HTTP API (POST /jobs, /dlq, /queues, /metrics ...) until SIGTERM."""
    require_extra("jobq api", "api")
    import uvicorn

    from jobq.api import create_app
    from jobq.tracing import setup

    settings, registry = settings_and_registry()
    require_free_port(port, "the API", "--port", host=host)
    provider = setup.provider_from_env("jobq-api")  # OTEL_EXPORTER_OTLP_ENDPOINT set: traced
    app = create_app(settings, registry, tracer_provider=provider)
    get_logger("jobq.api").info("api.starting", url=f"http://{host}:{port}",
                                docs=f"http://{host}:{port}/docs")
    # loop/http "auto" pick uvloop and httptools when installed (the core and the api extra).
    config = uvicorn.Config(
        app, host=host, port=port, workers=1, loop="auto", http="auto", lifespan="on",
        access_log=False, log_config=None, server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, root_path=root_path,
    )
    uvicorn.Server(config).run()
    setup.shutdown(provider)
