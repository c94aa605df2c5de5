"""Pytest wiring: fixtures live in tests/fixtures.py."""

pytest_plugins = ["fixtures"]
