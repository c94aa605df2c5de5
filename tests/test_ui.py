"""The dashboard over plain HTTP: shells hold no data and open without a token, fragments need
it, every payload is escaped, cross-site state changes are refused, JOBQ_UI=false turns it off."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from api_fixtures import ApiServer, assert_error, wait_healthy
from fixtures import Proc, process_env

from jobq.embedded import free_port
from jobq.settings import Settings

pytestmark = pytest.mark.any_server

TOKEN = "ui-test-token"
SCRIPT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


async def test_shells_are_open_data_needs_the_token_and_is_escaped(
    start_api: Callable[..., ApiServer],
) -> None:
    server = start_api(JOBQ_API_TOKENS=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        shell = await http.get("/ui")
        assert shell.status_code == 200 and "text/html" in shell.headers["content-type"]
        assert "script-src 'self'" in shell.headers["content-security-policy"]
        assert 'data-fragment="/ui/f/overview"' in shell.text and "<script>" not in shell.text
        assert (await http.get("/ui/static/app.js")).status_code == 200
        assert (await http.get("/ui/static/nope.js")).status_code == 404
        assert_error(await http.get("/ui/f/overview"), 401, "unauthorized")
        assert (await http.get("/ui/f/overview", headers=auth)).status_code == 200

        created = await http.post("/jobs", headers=auth, json={
            "type": "welcome-email", "idempotencyKey": "xss",
            "payload": {"email": "a@example.com", "name": "</td><b>bold</b>", "message": SCRIPT}})
        job_id = created.json()["jobId"]
        page = await http.get(f"/ui/f/jobs/{job_id}", headers=auth)
        assert page.status_code == 200
        assert "<script>" not in page.text and "<img" not in page.text and "<b>" not in page.text
        assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page.text
        listing = await http.get("/ui/f/queues/email-queue", headers=auth)
        assert job_id in listing.text
        missing = await http.get("/ui/f/jobs/<b>nope</b>", headers=auth)
        assert missing.status_code == 404 and "<b>" not in missing.text

        # A page of another site may not change state, token or not.
        foreign = {**auth, "Origin": "https://evil.example"}
        assert_error(await http.post("/queues/email-queue/pause", headers=foreign), 403,
                     "cross_site_request")
        assert_error(await http.post(f"/jobs/{job_id}/cancel", headers={
            **auth, "Sec-Fetch-Site": "cross-site"}), 403, "cross_site_request")
        assert (await http.get(f"/jobs/{job_id}")).status_code == 401
        same = {**auth, "Origin": server.url}
        paused = await http.post("/queues/email-queue/pause", headers=same)
        assert paused.status_code == 200 and paused.json()["paused"] is True
        assert (await http.get("/ui/queues/email-queue")).status_code == 200  # no data in it


async def test_ui_off_with_a_setting(start_api: Callable[..., ApiServer]) -> None:
    server = start_api(JOBQ_UI="false")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert_error(await http.get("/ui"), 404, "not_found")
        assert_error(await http.get("/ui/f/overview"), 404, "not_found")
        assert (await http.get("/queues")).status_code == 200


async def test_links_carry_the_root_path_behind_an_ingress_prefix(
    spawn: Callable[..., Proc], settings: Settings,
) -> None:
    port = free_port()
    proc = spawn(["api", "--port", str(port), "--root-path", "/jobq"], process_env(settings),
                 name="api")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        shell = await http.get("/ui")  # the Ingress stripped /jobq before passing it on
        assert 'src="/jobq/ui/static/app.js"' in shell.text
        assert 'data-root="/jobq"' in shell.text
        overview = await http.get("/ui/f/overview")
        assert overview.status_code == 200
