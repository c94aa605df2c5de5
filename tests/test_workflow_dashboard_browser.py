"""The dashboard's workflow pages in a real browser: Debian's chromium driven by Playwright
against a real ``jobq api`` (auth on) and worker on a real Valkey: the listing with states and
counts, a fan-in workflow's graph (its parts collapsed into one group with counts per state,
the join released with a link to its job, a node waiting on it), what each waiting node waits
on, a node key that is markup shown as text, and cancel from the page. Set
JOBQ_TEST_SCREENSHOTS=docs to refresh the screenshots the docs show."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import ApiServer
from fixtures import Proc, eventually
from wfhelpers import WF_TASKS

from jobq.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "browser-test-token"
MARKUP = '<img src=x onerror="window.__xss = 1">'
WAIT_MS = 20_000

pytestmark = [pytest.mark.any_server, pytest.mark.timeout(240)]

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail("no /usr/bin/chromium (hack/test.sh installs it)", pytrace=False)
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

from playwright.async_api import BrowserContext, async_playwright, expect  # noqa: E402


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 1280, "height": 800})
        yield context
        await context.close()


def node(key: str, *deps: str, type_: str = "wf-a") -> dict[str, Any]:
    return {"key": key, "type": type_, "payload": {"name": "n"},
            "deps": [{"node": d} for d in deps]}


async def create(http: httpx.AsyncClient, key: str, *nodes: dict[str, Any]) -> str:
    created = await http.post("/workflows", json={"idempotencyKey": key, "nodes": list(nodes)})
    assert created.status_code == 202, created.text
    return str(created.json()["workflowId"])


async def test_workflow_pages_graph_and_cancel(
    start_api: Callable[..., ApiServer], start_worker: Callable[..., Proc],
    browser: BrowserContext, tmp_path: Path,
) -> None:
    shots = Path(os.environ.get("JOBQ_TEST_SCREENSHOTS") or tmp_path)
    server = start_api(JOBQ_API_TOKENS=TOKEN)
    ui = f"{server.url}/ui"
    parts = [node(f"part{i}") for i in range(5)]
    async with httpx.AsyncClient(base_url=server.url, timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        # Parts run in wf-a (a worker serves it); the join waits in wf-b (none does), and
        # `after` waits on the join.
        fan_in = await create(http, "browser-fan-in", *parts,
                              node("join", *(p["key"] for p in parts), type_="wf-b"),
                              node("after", "join"), node(MARKUP, "join"))
        other = await create(http, "browser-other", node("lone", type_="wf-b"))
        start_worker("wf-a:2", JOBQ_TEST_EFFECTS_FILE=str(tmp_path / "effects.txt"))

        async def parts_done() -> bool:
            view = (await http.get(f"/workflows/{fan_in}")).json()
            return view["counts"]["succeeded"] == 5

        await eventually(parts_done, what="the five parts to succeed")

        page = await browser.new_page()
        await page.goto(f"{ui}/workflows")
        await page.locator("#login input[name=token]").fill(TOKEN)
        await page.locator("#login button").click()
        row = page.locator(f'tr[data-workflow="{fan_in}"]')
        await expect(row).to_contain_text("browser-fan-in", timeout=WAIT_MS)
        await expect(row.locator(".badge")).to_have_text("running")
        await expect(row.locator("td").nth(3)).to_have_text("8")  # nodes
        await expect(row.locator("td").nth(6)).to_have_text("5")  # succeeded
        await expect(page.locator(f'tr[data-workflow="{other}"]')).to_be_visible()
        await page.screenshot(path=shots / "dashboard-workflows.png", full_page=True)

        await row.get_by_role("link").click()
        await expect(page.locator("#wf-state")).to_have_text("running", timeout=WAIT_MS)
        group = page.locator("svg.wf-graph g.group")
        await expect(group).to_have_count(1)
        await expect(group).to_contain_text("5 \u00d7 part0")
        await expect(group).to_contain_text("succeeded 5")
        join = page.locator('svg.wf-graph g.node[data-key="join"]')
        await expect(join).to_contain_text("released")
        await expect(page.locator("svg.wf-graph path.edge")).to_have_count(3)
        waits = page.locator('tr[data-node="after"] td.waits')
        await expect(waits).to_have_text("join")
        await expect(page.locator("table.wf-nodes")).to_contain_text(MARKUP)
        assert await page.evaluate("window.__xss") is None
        await page.screenshot(path=shots / "dashboard-workflow.png", full_page=True)

        # The join's job: a link from the graph to its page (waiting in wf-b).
        await join.get_by_role("link").click()
        await expect(page.locator("#job-state")).to_have_text("waiting", timeout=WAIT_MS)

        await page.go_back()
        await expect(page.locator("#wf-state")).to_have_text("running", timeout=WAIT_MS)
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#wf-state")).to_have_text("cancelled", timeout=WAIT_MS)
        await expect(page.locator('tr[data-node="after"] .badge')).to_have_text("cancelled")
        view = (await http.get(f"/workflows/{fan_in}")).json()
        assert view["state"] == "cancelled"
        assert view["counts"] == {"waiting": 0, "released": 0, "succeeded": 5, "failed": 0,
                                  "cancelled": 3, "dep_failed": 0, "skipped": 0}
        assert (await http.get(f"/workflows/{other}")).json()["state"] == "running"
        assert await page.evaluate("window.__xss") is None
