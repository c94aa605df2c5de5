"""Where settings come from: the process's environment over the `.env` file in the cwd.

Read by hand rather than through pydantic-settings: that package alone took about 70 ms of a
worker's start-up (imports and its per-source machinery), and start-up is the latency of
scaling a queue up from zero. Values are then validated by plain pydantic models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_FILE = ".env"


def read_environment(env_file: str | Path = ENV_FILE) -> dict[str, str]:
    """Every variable of ``env_file`` (when it exists) and of the environment, names upper-cased
    (names are case-insensitive); the environment wins over the file.

    The file is read with python-dotenv (``export``, quotes, comments and ``${VAR}``
    interpolation as it defines them); a name without a value there is left out."""
    merged: dict[str, str] = {}
    path = Path(env_file)
    if path.is_file() or path.is_fifo():
        from dotenv import dotenv_values  # only when there is a file to read

        merged.update((name.upper(), value) for name, value in dotenv_values(path).items()
                      if value is not None)
    merged.update((name.upper(), value) for name, value in os.environ.items())
    return merged


def under_prefix(environment: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The variables named ``<prefix><NAME>``, keyed by ``name`` (lower-case)."""
    return {name[len(prefix):].lower(): value for name, value in environment.items()
            if name.startswith(prefix)}
