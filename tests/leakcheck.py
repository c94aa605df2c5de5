"""Opt-in (``JOBQ_TEST_COLLECT_EACH=1``): a full garbage collection after every test, so a
resource leaked in a reference cycle (an unclosed Redis connection, a socket) warns, and fails
under ``filterwarnings = error``, in the teardown of the test that leaked it. Without it the
warning comes at the next full collection, in whichever test runs then: the in-process API's
start-up collects (api/main.py), so those tests were where leaks of earlier tests surfaced.
Off by default only to keep runs as they were; it cost nothing measurable on the Valkey suite."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _collect_after_each_test() -> Iterator[None]:
    yield
    gc.collect()
