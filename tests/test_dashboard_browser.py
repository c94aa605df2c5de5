"""The dashboard in a real browser: Debian's chromium driven by Playwright against a real
``jobq api`` (auth on) and worker on a real Valkey. Set JOBQ_TEST_SCREENSHOTS=docs to refresh
the screenshots the docs show."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import ApiServer
from fixtures import Proc, eventually, metrics_port, scrape

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "browser-test-token"
SCRIPT = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
WAIT_MS = 20_000

pytestmark = [pytest.mark.any_server, pytest.mark.timeout(240)]

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail("no /usr/bin/chromium (hack/test.sh installs it)", pytrace=False)
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

from playwright.async_api import BrowserContext, Page, async_playwright, expect  # noqa: E402


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 1280, "height": 800})
        yield context
        await context.close()


def shot_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("JOBQ_TEST_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path


async def post_job(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await http.post("/jobs", json=body)
    assert created.status_code == 202, created.text
    return str(created.json()["jobId"])


async def job_state(page: Page, state: str) -> None:
    await expect(page.locator("#job-state")).to_have_text(state, timeout=WAIT_MS)


async def test_dashboard_end_to_end(
    start_api: Callable[..., ApiServer], start_worker: Callable[..., Proc],
    browser: BrowserContext, tmp_path: Path,
) -> None:
    shots = shot_dir(tmp_path)
    server = start_api(JOBQ_API_TOKENS=TOKEN)
    ui = f"{server.url}/ui"
    async with httpx.AsyncClient(base_url=server.url, timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        failed = await post_job(http, {"type": "flaky", "idempotencyKey": "b-failed",
                                       "payload": {"failTimes": 1}, "options": {"attempts": 1}})
        xss = await post_job(http, {"type": "welcome-email", "idempotencyKey": "b-xss",
                                    "payload": {"email": "a@example.com", "name": "Mallory",
                                                "message": SCRIPT}})
        worker = start_worker("report-queue:2")
        port = await metrics_port(worker)

        async def dead_lettered() -> str | None:
            job = (await http.get(f"/jobs/{failed}")).json()
            return job["deadLetterId"] if job["state"] == "failed" else None

        dlq_id = await eventually(dead_lettered, what="the failed job in the DLQ")

        # The token prompt; the token is kept for the tab and never put in a URL.
        page = await browser.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(ui)
        await page.locator("#login input[name=token]").fill(TOKEN)
        await page.locator("#login button").click()
        row = page.locator('tr[data-queue="report-queue"]')
        await expect(row).to_contain_text("report-queue", timeout=WAIT_MS)
        await expect(page.locator('tr[data-queue="email-queue"]')).to_be_visible()
        await page.screenshot(path=shots / "dashboard-overview.png", full_page=True)

        # A failed job: its attempt with the error.
        await page.goto(f"{ui}/jobs/{failed}")
        await job_state(page, "failed")
        await expect(page.locator("table.history")).to_contain_text("flaky: attempt 1 fails")
        await page.screenshot(path=shots / "dashboard-job.png", full_page=True)

        # Replay it from the DLQ page and see the new job complete.
        await page.goto(f"{ui}/dlq")
        entry = page.locator(f'tr[data-dlq="{dlq_id}"]')
        await expect(entry).to_be_visible(timeout=WAIT_MS)
        await page.screenshot(path=shots / "dashboard-dlq.png", full_page=True)
        await entry.locator("input[type=checkbox]").check()
        await page.get_by_role("button", name="Replay selected").click()
        await expect(page.locator("#notice")).to_contain_text("Replayed 1", timeout=WAIT_MS)
        replays = (await http.get(f"/dlq/{dlq_id}")).json()["replays"]
        assert len(replays) == 1
        await page.goto(f"{ui}/jobs/{replays[0]['jobId']}")
        await job_state(page, "completed")

        # Pause the queue: a new job stays waiting; resume: it runs.
        await page.goto(ui)
        await row.get_by_role("button", name="Pause").click()
        await expect(row.locator(".badge")).to_have_text("paused", timeout=WAIT_MS)

        async def worker_sees_pause() -> bool:
            return scrape(port).get('jobq_queue_paused{queue="report-queue"}') == 1

        await eventually(worker_sees_pause, timeout=5, what="the worker to see the pause")
        held = await post_job(http, {"type": "sleep", "idempotencyKey": "b-held",
                                     "payload": {"seconds": 0}})
        await page.goto(f"{ui}/jobs/{held}")
        await job_state(page, "waiting")
        await asyncio.sleep(1.5)  # a window in which an unpaused worker would have run it
        await job_state(page, "waiting")
        await page.goto(f"{ui}/queues/report-queue")
        await expect(page.locator(f'tr[data-job="{held}"]')).to_be_visible(timeout=WAIT_MS)
        await page.screenshot(path=shots / "dashboard-queue.png", full_page=True)
        await page.get_by_role("button", name="Resume").click()
        await page.goto(f"{ui}/jobs/{held}")
        await job_state(page, "completed")

        # Cancel a waiting job (no worker runs email-queue); its <script> payload is text.
        await page.goto(f"{ui}/jobs/{xss}")
        await job_state(page, "waiting")
        await expect(page.locator("pre.payload")).to_contain_text("<script>window.__xss = 1")
        assert await page.evaluate("window.__xss") is None
        await page.get_by_role("button", name="Cancel").click()
        await job_state(page, "cancelled")
        assert (await http.get(f"/jobs/{xss}")).json()["state"] == "cancelled"
        await page.screenshot(path=shots / "dashboard-job-cancelled.png", full_page=True)
        assert await page.evaluate("window.__xss") is None

        assert not any(TOKEN in url for url in requested)
        assert TOKEN not in server.proc.output() and TOKEN not in worker.output()

        phone = await browser.new_page()  # a new tab: its own sessionStorage, so sign in
        await phone.set_viewport_size({"width": 390, "height": 844})
        await phone.goto(ui)
        await phone.locator("#login input[name=token]").fill(TOKEN)
        await phone.locator("#login button").click()
        await expect(phone.locator('tr[data-queue="report-queue"]')).to_be_visible(
            timeout=WAIT_MS)
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the overview scrolls sideways on a phone ({width}px)"
        await phone.screenshot(path=shots / "dashboard-phone.png", full_page=True)
