"""pytest fixtures for Runestone's test tools.

Use them with ``pytest_plugins = ["runestone.testing.fixtures"]`` in a root
``conftest.py``, or import a fixture by name into a ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runestone.testing.upstream import FakeUpstream

__all__ = ["fake_upstream"]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started :class:`FakeUpstream` (no pacing, no key), stopped after the test."""
    with FakeUpstream() as upstream:
        yield upstream
