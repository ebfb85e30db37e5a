"""Fixtures for the provider tests: a real fake upstream (the data plane is suite-wide)."""

from __future__ import annotations

from runestone.testing.fixtures import fake_upstream  # noqa: F401 - a fixture, found by name
