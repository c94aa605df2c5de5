"""Schemathesis over the live API's own OpenAPI document: no 5xx, and every response fits the
schema documented for its status (with auth on, so the security scheme is exercised too)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from test_api_support import ApiServer, start_api

__all__ = ["start_api"]  # fixture used below

TOKEN = "schema-test-token"


def test_schemathesis_finds_no_server_error_or_schema_violation(
    start_api: Callable[..., ApiServer], tmp_path: Path
) -> None:
    server = start_api(JOBQ_API_TOKENS=TOKEN)
    auth = f"Authorization: Bearer {TOKEN}"
    schema = httpx.get(f"{server.url}/openapi.json", headers={"Authorization": auth[15:]})
    assert schema.status_code == 200, schema.text
    (tmp_path / "openapi.json").write_bytes(schema.content)
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [str(st), "run", str(tmp_path / "openapi.json"), "--url", server.url, "-H", auth,
         "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", "20", "--seed", "20261128", "--request-timeout", "10",
         "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    assert "Traceback" not in server.proc.output()
