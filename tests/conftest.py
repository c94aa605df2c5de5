"""Pytest wiring: the fixtures live in tests/fixtures.py."""

from fixtures import *  # noqa: F403
