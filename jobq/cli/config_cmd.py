"""``jobq config show``: the settings a jobq process started here would run with, and where
each came from (the environment, ``.env`` or the default), with secrets masked."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import orjson

from jobq.environment import ENV_FILE, read_environment
from jobq.settings import Settings, env_names, load_settings

MASK = "***"
SECRET_WORDS = ("password", "token", "secret")  # a field named with one of these is masked


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by the mask."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def shown_value(field: str, value: Any) -> Any:
    """The value as printed: secrets masked (each item of a list of them), URLs without their
    password."""
    if value is None:
        return None
    if any(word in field for word in SECRET_WORDS):
        return [MASK for _ in value] if isinstance(value, list) else MASK
    if field.endswith("_url") and isinstance(value, str):
        return mask_url(value)
    return value


def effective(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each setting by its variable name: its shown value and its source."""
    environment = read_environment()
    from_process = {name.upper() for name in os.environ}
    dumped = settings.model_dump(mode="json")
    rows: dict[str, dict[str, Any]] = {}
    for variable, field in sorted(env_names().items()):
        if variable in from_process:
            source = "env"
        elif variable in environment:
            source = ENV_FILE
        else:
            source = "default"
        rows[variable] = {"value": shown_value(field, dumped[field]), "source": source}
    return rows


@click.group()
def config() -> None:
    """Inspect jobq's configuration (JOBQ_* variables, REDIS_URL, .env)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"settings": {NAME: {"value": ..., "source": ...}}}.')
def show(as_json: bool) -> None:
    """The effective settings, each with its source: env, .env or default. Passwords, tokens
    and the password in REDIS_URL are masked."""
    rows = effective(load_settings())
    if as_json:
        click.echo(orjson.dumps({"settings": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    width = max(map(len, rows))
    for variable, row in rows.items():
        value = row["value"]
        if isinstance(value, list):
            value = ",".join(map(str, value))
        elif value is None:
            value = "-"
        elif isinstance(value, bool):
            value = str(value).lower()
        click.echo(f"{variable:<{width}}  {row['source']:<7}  {value}")
