"""Fixtures for the provider tests: a real data plane and a real fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runestone.io import DataPlane
from runestone.testing.fixtures import fake_upstream  # noqa: F401 - a fixture, found by name


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    """A started data plane, stopped (providers closed) after the test."""
    with DataPlane() as data_plane:
        yield data_plane
