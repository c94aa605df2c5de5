"""``jobq workflows`` show / list / cancel / check as a user runs them (real CLI processes,
real Redis, no workers): the view, the listing, a cancel, a check that finds nothing wrong and
one that finds a counter broken on purpose; bad input is one line and a non-zero exit."""

from __future__ import annotations

import json

import pytest
from test_cli import assert_one_line_error, jobq
from wfhelpers import WF_TASKS, a, b

from jobq.client import Client
from jobq.settings import Settings
from jobq.workflows import chord, group

pytestmark = pytest.mark.any_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tasks": WF_TASKS.split(",")})


async def test_show_list_check_cancel(client: Client, settings: Settings) -> None:
    created = await client.create_workflow("cli-wf", chord(group(a("x"), b("y")), a("z")))
    wf = created.workflow_id
    shown = jobq(settings, "workflows", "show", wf)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].startswith(f"{wf}\trunning\twaiting=1 released=2")
    assert f"  z\twaiting\twf-a\t{created.jobs['z']}\twaits on x, y" in shown.stdout
    as_json = json.loads(jobq(settings, "workflows", "show", wf, "--json").stdout)
    assert as_json["workflowId"] == wf and len(as_json["nodes"]) == 3
    listed = jobq(settings, "workflows", "list")
    assert listed.stdout.startswith(f"{wf}\trunning"), listed.stdout
    checked = jobq(settings, "workflows", "check", wf)
    assert checked.returncode == 0 and checked.stdout == f"{wf}\tok\n", checked.stderr

    await client.redis.hincrby(client.workflows.keys(wf).key("rem"), "2", 1)  # break a counter
    broken = jobq(settings, "workflows", "check", wf)
    assert broken.returncode == 1 and "node 'z': rem 3 but 2 dependencies open" in broken.stdout
    await client.redis.hincrby(client.workflows.keys(wf).key("rem"), "2", -1)

    cancelled = jobq(settings, "workflows", "cancel", wf)
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"{wf}\tcancelled")
    assert jobq(settings, "workflows", "check", wf).returncode == 0


def test_bad_input_is_one_line(settings: Settings) -> None:
    assert_one_line_error(jobq(settings, "workflows", "show", "nope"), 1, "not a workflow id")
    assert_one_line_error(jobq(settings, "workflows", "show", "0" * 32), 3, "no workflow")
    assert_one_line_error(jobq(settings, "workflows", "check", "0" * 32), 3, "no workflow")
