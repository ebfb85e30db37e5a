"""Helpers shared by the provider tests: build providers against the fake upstream, run streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from runestone.exceptions import ProviderError
from runestone.io import DataPlane
from runestone.messages import (
    ChatRequest,
    Done,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from runestone.providers import Provider, ProviderSettings, create_provider
from runestone.testing.upstream import FakeUpstream

API_KEY = "sk-test-0123456789abcdefSECRET"
FAST_TIMEOUTS: Mapping[str, float] = {
    "connect": 2.0,
    "first_token": 0.3,
    "idle": 0.3,
    "total": 10.0,
}
WIRES = ("openai", "anthropic")


def base_url(upstream: FakeUpstream, kind: str) -> str:
    return upstream.anthropic_base_url if kind == "anthropic" else upstream.openai_base_url


def make_provider(
    plane: DataPlane,
    upstream: FakeUpstream | None,
    kind: str,
    *,
    timeouts: Mapping[str, float] | None = None,
    **extra: Any,
) -> Provider:
    """A provider of ``kind`` pointed at ``upstream`` (or ``base_url=``), closed with ``plane``."""
    url = extra.pop("base_url", None)
    if url is None:
        assert upstream is not None, "give an upstream or a base_url"
        url = base_url(upstream, kind)
    spec: dict[str, Any] = {
        "type": kind,
        "base_url": url,
        "api_key": API_KEY,
        "timeouts": dict(timeouts or FAST_TIMEOUTS),
    }
    spec.update(extra)
    provider = create_provider(ProviderSettings.from_dict(kind, spec))
    plane.register_closeable(provider)
    return provider


def request(model: str, *, text: str = "Say the known text please", **fields: Any) -> ChatRequest:
    data: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    data.update(fields)
    return ChatRequest.from_dict(data)


@dataclass(frozen=True)
class Outcome:
    """What one stream produced: its events, and the error it raised (if any)."""

    events: tuple[StreamEvent, ...]
    error: ProviderError | None

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TextDelta)]

    @property
    def tool_deltas(self) -> list[ToolCallDelta]:
        return [e for e in self.events if isinstance(e, ToolCallDelta)]

    @property
    def done(self) -> Done | None:
        dones = [e for e in self.events if isinstance(e, Done)]
        assert len(dones) <= 1, f"more than one Done: {dones}"
        if dones:
            assert self.events[-1] is dones[0], "Done is not the last event"
        return dones[0] if dones else None

    @property
    def usage(self) -> Usage | None:
        found = [e for e in self.events if isinstance(e, Usage)]
        return found[-1] if found else None


async def collect_async(provider: Provider, chat: ChatRequest) -> Outcome:
    events: list[StreamEvent] = []
    try:
        async for event in provider.stream(chat):
            events.append(event)
    except ProviderError as exc:
        return Outcome(tuple(events), exc)
    return Outcome(tuple(events), None)


def collect(plane: DataPlane, provider: Provider, chat: ChatRequest) -> Outcome:
    """Stream ``chat`` through ``provider`` on the data plane."""
    return plane.run(collect_async(provider, chat), timeout=20)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MiniServer:
    """A one-route aiohttp server on the data plane's loop, for answers the fake cannot give."""

    def __init__(self, plane: DataPlane, handler: Handler) -> None:
        self.plane = plane
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        return await self.handler(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> MiniServer:
        self.plane.run(self._start(), timeout=5)
        self.plane.register_closeable(self)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
