"""Prometheus metrics of one system, in a registry of its own (two systems never collide)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from runestone.request import AttemptOutcome, RequestOutcome

__all__ = ["CIRCUIT_STATE_VALUES", "Metrics"]

CIRCUIT_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
"""How ``runestone_circuit_state`` encodes a circuit's state."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Requests, attempts, latency, time to first token, circuits, in-flight, restarts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "runestone_requests",
            "Requests by the provider and model that answered (or failed last) and outcome.",
            ["provider", "model", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "runestone_attempts",
            "Upstream attempts by provider, model and outcome.",
            ["provider", "model", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "runestone_attempt_latency_seconds",
            "Upstream attempt latency.",
            ["provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "runestone_time_to_first_token_seconds",
            "Time from the start of an attempt to its first content.",
            ["provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.circuit_state = Gauge(
            "runestone_circuit_state",
            "Circuit state per provider: 0 closed, 1 half-open, 2 open.",
            ["provider"],
            registry=self.registry,
        )
        self.circuit_transitions = Counter(
            "runestone_circuit_transitions",
            "Circuit state changes per provider, from and to which state, and why.",
            ["provider", "old", "new", "reason"],
            registry=self.registry,
        )
        self.recovery_probes = Counter(
            "runestone_recovery_probes",
            "Out-of-band health probes of open circuits, by provider and result (pass, fail).",
            ["provider", "result"],
            registry=self.registry,
        )
        self.panic_calls = Counter(
            "runestone_panic_calls",
            "Calls made in panic mode (every candidate held back), by provider and result: "
            "probe (let through to probe the open circuit) or refused.",
            ["provider", "result"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "runestone_in_flight_requests",
            "Requests admitted and not finished.",
            registry=self.registry,
        )
        self.resumes = Counter(
            "runestone_stream_resumes",
            "Cut streams continued on another candidate, by mode (prefill or replay).",
            ["mode"],
            registry=self.registry,
        )
        self._attempt_children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self._request_children: dict[tuple[str, str, str], Any] = {}

    def watch_tree(self, tree: Callable[[], dict[str, Any] | None]) -> None:
        """Export every actor's restart count, read from the supervision tree at scrape time."""
        self.registry.register(_RestartCollector(tree))

    def observe_attempt(self, attempt: AttemptOutcome) -> None:
        """Count one attempt by its outcome label; its latency too when it completed."""
        provider, model, outcome = attempt.provider, attempt.model, attempt.outcome
        latency, first_token = attempt.latency, attempt.first_token
        key = (provider, model, outcome)
        children = self._attempt_children.get(key)
        if children is None:
            # Looked up once per label set: ``labels()`` costs more than the increment.
            children = self._attempt_children[key] = (
                self.attempts.labels(provider, model, outcome),
                self.latency.labels(provider, model),
                self.first_token.labels(provider, model),
            )
        attempts, latencies, first_tokens = children
        attempts.inc()
        if outcome == "ok":
            latencies.observe(latency)
        if first_token is not None:
            first_tokens.observe(first_token)

    def count_request(self, provider: str, model: str, outcome: RequestOutcome) -> None:
        """Count one request by the route it ended on and how it ended."""
        key = (provider, model, outcome)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(provider, model, outcome)
        child.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)


class _RestartCollector(Collector):
    def __init__(self, tree: Callable[[], dict[str, Any] | None]) -> None:
        self._tree = tree

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "runestone_actor_restarts",
            "Restarts of each supervised actor, by its path in the supervision tree.",
            labels=["actor"],
        )
        try:
            tree = self._tree()
        except Exception:  # noqa: BLE001 - a scrape during shutdown reports nothing, not a 500
            tree = None
        if tree is not None:
            for path, restarts in _walk(tree, tree["id"]):
                family.add_metric([path], restarts)
        yield family


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, int]]:
    for child in node.get("children") or ():
        child_path = f"{path}/{child['id']}"
        yield child_path, int(child.get("restarts", 0))
        yield from _walk(child, child_path)
