"""Suite-wide fixtures: every test must leave no actor and no thread of ours running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pykka
import pytest

from runestone.io import DataPlane
from runestone.supervisors import live_loop_actors

pytest_plugins = ["runestone.testing.fixtures"]

# Threads that libraries start once per process and keep on purpose: LiteLLM's logging
# pool (tests/clients) is a module-level executor that grows a worker per call up to its
# size and is never shut down while litellm is imported (shutting it breaks later calls).
_PROCESS_THREAD_PREFIXES = ("pytest_timeout", "litellm-logging_")
_GRACE_SECONDS = 5.0


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not before, less the process-wide ones (never waited for)."""
    return [t for t in _live_threads() - before if not t.name.startswith(_PROCESS_THREAD_PREFIXES)]


@pytest.fixture(autouse=True)
def no_leftover_actors_or_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves an actor (thread or loop) or a new thread running after it ends.

    Threads get a short grace period to finish exiting (an actor's thread ends a
    moment after its stop future resolves); anything still alive then is a leak.
    Leftovers are stopped so they cannot spoil the next test.
    """
    before = _live_threads()
    yield
    deadline = time.monotonic() + _GRACE_SECONDS
    for thread in _new_threads(before):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    actors: list[object] = [*pykka.ActorRegistry.get_all(), *live_loop_actors()]
    leftover_threads = _new_threads(before)
    if not actors and not leftover_threads:
        return
    names = [repr(a) for a in actors] + [t.name for t in leftover_threads]
    pykka.ActorRegistry.stop_all(block=True, timeout=2)
    if request.node.get_closest_marker("allow_leftover_threads"):
        return
    pytest.fail(f"test left running: {', '.join(names)}")


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    """A started data plane, stopped (providers closed) after the test."""
    with DataPlane() as data_plane:
        yield data_plane
