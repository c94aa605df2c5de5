"""Pytest wiring: the fixture modules, registered as plugins; tests import their helpers by
name. (Not with ``pytest_plugins``: pytest's own fixture plugin is called "fixtures" already,
so naming ours there would silently load nothing.)"""

from __future__ import annotations

import os

import api_fixtures
import fixtures
import leakcheck
import postgres
import pytest


def pytest_configure(config: pytest.Config) -> None:
    for module in (fixtures, api_fixtures, postgres):
        config.pluginmanager.register(module, f"jobq-tests-{module.__name__}")
    if os.environ.get("JOBQ_TEST_COLLECT_EACH") == "1":
        config.pluginmanager.register(leakcheck, "jobq-tests-leakcheck")
