"""Live reconfiguration of a running server: on SIGHUP, on a change of the watched file, and on
``POST /admin/reload``.

A reload reads the config file the server started from again and applies it with
:meth:`System.reload`: added providers start, removed ones drain, changed ones are
replaced, and streams in flight finish; routing, the pool's bound, the keys and
their limits change at once. A config that does not load is refused with its one
clear error, and the running one keeps serving. The ``server``, ``supervision``
and ``logging`` sections take effect only when the server is restarted: a reload
that changes them says so. Reloads run one at a time; each that applies is a new
:class:`Revision`, shown by ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from runestone.actors.provider_factory import ReloadReport
from runestone.config import load_config
from runestone.exceptions import ConfigError, RunestoneError
from runestone.server.errors import ApiError

if TYPE_CHECKING:
    from runestone.server.app import Gateway

__all__ = ["RESTART_ONLY", "ConfigReloader", "ReloadFailedError", "ReloadOutcome", "Revision"]

log = structlog.get_logger(__name__)

RESTART_ONLY: Final = ("server", "supervision", "logging")
"""The config sections a running server cannot change: they take effect on a restart."""


class ReloadFailedError(RunestoneError):
    """The new config loaded but could not be applied, or there is no file to reload."""


@dataclass(frozen=True, slots=True)
class Revision:
    """One applied config: its number (1 at start), when it was loaded, and its file."""

    number: int
    loaded_at: float
    """Wall-clock seconds since the epoch."""
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        loaded = datetime.datetime.fromtimestamp(self.loaded_at, tz=datetime.UTC)
        return {
            "revision": self.number,
            "loaded_at": loaded.isoformat(timespec="seconds"),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload changed."""

    revision: Revision
    providers: ReloadReport
    restart_needed: tuple[str, ...]
    """Changed sections that wait for a restart (see :data:`RESTART_ONLY`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.revision.to_dict(),
            "providers": {
                "added": list(self.providers.added),
                "removed": list(self.providers.removed),
                "replaced": list(self.providers.replaced),
                "unchanged": list(self.providers.unchanged),
            },
            "restart_needed": list(self.restart_needed),
        }

    def summary(self) -> str:
        """One line for an operator."""
        changes = [
            f"{what}: {', '.join(names)}"
            for what, names in (
                ("added", self.providers.added),
                ("removed", self.providers.removed),
                ("replaced", self.providers.replaced),
            )
            if names
        ]
        text = f"config revision {self.revision.number} applied"
        text += f" ({'; '.join(changes)})" if changes else " (no provider changed)"
        if self.restart_needed:
            text += f"; {', '.join(self.restart_needed)} take effect on a restart"
        return text


class ConfigReloader:
    """Reloads the gateway's config file (see the module docstring)."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        wall_clock: Callable[[], float],
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self._gateway = gateway
        self._wall_clock = wall_clock
        self.announce = announce
        """Where a reload's outcome is said (``runestone serve``: its stdout)."""
        source = gateway.config.source
        self.revision = Revision(1, wall_clock(), source)
        # The file as the running config was read from it (near enough: the gateway is
        # built right after the load), so a change made at any time after is seen.
        self._seen = _stamp(Path(source)) if source is not None else None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Load the file again and apply it; raises :class:`ConfigError` for a config that
        does not load and :class:`ReloadFailedError` for one that could not be applied."""
        async with self._lock:
            running = self._gateway.config
            source = running.source
            if source is None:
                raise ReloadFailedError(
                    "the running config did not come from a file: there is nothing to reload"
                )
            stamp = await asyncio.to_thread(_stamp, Path(source))
            try:
                new = await asyncio.to_thread(load_config, source)
            except ConfigError as exc:
                log.error("config_reload_refused", trigger=trigger, error=str(exc))
                raise
            restart_needed = tuple(
                name for name in RESTART_ONLY if getattr(new, name) != getattr(running, name)
            )
            # What cannot change live stays as the server started (its address, above all).
            new = dataclasses.replace(
                new, **{name: getattr(running, name) for name in RESTART_ONLY}
            )
            try:
                system = self._gateway.system
            except ApiError as exc:  # still starting: nothing to reload into yet
                raise ReloadFailedError(exc.message) from exc
            try:
                # Off the loop: the system asks its actors, which may need this loop meanwhile.
                report = await asyncio.to_thread(system.reload, new)
            except RunestoneError as exc:
                log.error("config_reload_failed", trigger=trigger, error=str(exc))
                raise ReloadFailedError(f"the new config could not be applied ({exc})") from exc
            self._gateway.apply_config(new)
            self._seen = stamp  # applied: the watcher need not apply it again
            self.revision = Revision(self.revision.number + 1, self._wall_clock(), source)
            outcome = ReloadOutcome(self.revision, report, restart_needed)
            log.info(
                "config_reloaded",
                trigger=trigger,
                revision=self.revision.number,
                added=list(report.added),
                removed=list(report.removed),
                replaced=list(report.replaced),
                restart_needed=list(restart_needed),
            )
            return outcome

    def refusal(self, error: BaseException) -> str:
        """What to say of a reload that did not apply: the running revision serves on."""
        return f"the new config was refused, revision {self.revision.number} keeps serving: {error}"

    def reload_soon(self, trigger: str) -> None:
        """Reload in the background (a signal, the watcher) and say how it went."""
        task = asyncio.get_running_loop().create_task(self._reload_and_say(trigger))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_and_say(self, trigger: str) -> None:
        try:
            outcome = await self.reload(trigger)
        except (ConfigError, ReloadFailedError) as exc:
            self._say(f"runestone: {trigger}: {self.refusal(exc)}")
        else:
            self._say(f"runestone: {trigger}: {outcome.summary()}")

    def _say(self, text: str) -> None:
        if self.announce is not None:
            self.announce(text)

    async def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the config file changes (its size or modification time), checked
        every ``interval`` seconds, until cancelled."""
        source = self._gateway.config.source
        if source is None:
            return
        path = Path(source)
        while True:
            await asyncio.sleep(interval)
            stamp = await asyncio.to_thread(_stamp, path)
            if stamp != self._seen:
                self._seen = stamp  # refused or applied, this version is dealt with
                await self._reload_and_say(f"{path.name} changed")

    async def aclose(self) -> None:
        """Cancel reloads still running in the background."""
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None  # gone for now (an editor replacing it): the next change is the new file
    return status.st_mtime_ns, status.st_size
