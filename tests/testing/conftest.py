"""Fixtures for the tests of Runestone's test tools."""

from __future__ import annotations

from runestone.testing.fixtures import fake_upstream  # noqa: F401 - a fixture, found by name
