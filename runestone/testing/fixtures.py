"""pytest fixtures for Runestone's test tools.

Use them with ``pytest_plugins = ["runestone.testing.fixtures"]`` in a root
``conftest.py``, or import a fixture by name into a ``conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runestone.testing.redis_server import RedisServer, find_redis_server
from runestone.testing.upstream import FakeUpstream

__all__ = ["fake_upstream", "redis_server"]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started :class:`FakeUpstream` (no pacing, no key), stopped after the test."""
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A started :class:`~runestone.testing.redis_server.RedisServer`, closed after the test.

    Without ``redis-server`` the test is skipped, loudly; under CI (``$CI`` set) it
    fails instead: CI installs Redis, so its absence is a broken run, not a skip.
    """
    if find_redis_server() is None:
        reason = "redis-server is not installed: apt-get install redis-server"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the cluster tests)")
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
    with RedisServer() as server:
        yield server
