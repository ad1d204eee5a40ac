"""What keeps a gateway running beside its calls: start-up and shutdown (ASGI's lifespan), the
key and deployment refresh, and the active probes of the deployments that ask for them.

Nothing here runs on a call's path: :class:`dizuo.gateway.app.Gateway` answers calls, this keeps
what they read (its key cache and its router) current.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from dizuo.config import PlatformConfig
from dizuo.errors import ConfigError, DizuoError
from dizuo.gateway.http import Receive, Send
from dizuo.routing import Deployment, Router
from dizuo.routing.catalog import Catalog

if TYPE_CHECKING:
    from dizuo.gateway.app import Gateway

__all__ = ["PROBE_TICK", "Upkeep"]

log = logging.getLogger("dizuo.gateway")
PROBE_TICK = 0.1  # seconds between looks at which deployments are due for an active probe
SWITCH_SECONDS = 0.0005  # the interpreter's switch interval in a server process (serve_alone)
YOUNG_OBJECTS = 20_000  # the garbage collector's first threshold in a server process (serve_alone)


class Upkeep:
    """The lifecycle of one gateway: :meth:`startup`, :meth:`shutdown` and what runs between."""

    def __init__(
        self,
        gateway: Gateway,
        catalog: Catalog | None = None,
        build: Callable[[PlatformConfig], list[Deployment]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.catalog = catalog  # run-time deployments (the database's), with build: reloaded
        self.build = build
        # Set by `dizuo serve` for its server processes (never in a process that hosts tests):
        # :meth:`serve_alone`.
        self.alone = False
        # Hooks of what runs beside the gateway (the retention job, knowledge bases): at start-up, at shutdown.
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self._refresher: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None

    def serve_alone(self) -> None:
        """Tune the interpreter for a process that only serves (`dizuo serve`), once started:

        - what start-up loaded (modules, tables, dictionaries, compiled statements: millions of
          objects that live as long as the process) leaves the garbage collector's view. Each full
          collection scanned them all, stopping every call for 20-60 ms about once a few thousand
          calls: the one-connection p99 (docs/benchmarks.md);
        - the writer threads (the usage journal and spool) hand the interpreter back to the event
          loop within :data:`SWITCH_SECONDS` rather than the default 5 ms: a call whose answer came
          while a group commit was being built waited for it, the rest of that p99 tail;
        - the youngest generation is collected once :data:`YOUNG_OBJECTS` more container objects
          were made than freed, not the default 700. Under load the default collected the youngest
          generation about once every 11 calls, and everything about once every 1,200 calls (1.6
          full collections a second at 2,000 calls a second), about 3 % of the throughput. A call
          keeps less than one object in the end, so with this threshold 19,000 calls made no
          collection at all."""
        self.alone = True

    async def startup(self) -> None:
        """Load keys and start every provider; a provider that cannot start is marked unavailable."""
        gateway = self.gateway
        await asyncio.to_thread(gateway.keys.reload)
        await asyncio.to_thread(gateway.meter.start)
        if gateway.events is not None:
            gateway.events.start()
        await asyncio.gather(*(self._start(dep) for dep in gateway.router.deployments))
        self._refresher = asyncio.create_task(self._refresh_keys(), name="dizuo-key-refresh")
        self._prober = asyncio.create_task(self._probe_loop(), name="dizuo-probes")
        for hook in self.on_startup:
            await hook()
        gateway.started = True

    async def _start(self, dep: Deployment) -> None:
        try:
            await dep.provider.start()
        except (ImportError, FileNotFoundError, OSError, ValueError) as exc:
            dep.unavailable = f"{type(exc).__name__}: {exc}"
            log.warning("deployment %s is unavailable: %s", dep.name, dep.unavailable)

    async def shutdown(self) -> None:
        """Stop the key refresher, providers and pooled connections."""
        gateway = self.gateway
        for task in (self._refresher, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for dep in gateway.router.deployments:
            await dep.provider.close()
        await gateway.transport.close()
        await asyncio.to_thread(gateway.meter.stop)
        if gateway.events is not None:
            await asyncio.to_thread(gateway.events.stop)
        await gateway.meter.aclose()
        await gateway.limiter.aclose()
        for hook in self.on_shutdown:
            await hook()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """ASGI's lifespan protocol: start-up and shutdown as the server asks."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # report the failure to the server, which exits
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.alone:  # see serve_alone
                    gc.collect()
                    gc.freeze()
                    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])
                    sys.setswitchinterval(SWITCH_SECONDS)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refresh_keys(self) -> None:
        gateway = self.gateway
        while True:
            await asyncio.sleep(gateway.settings.key_refresh_seconds)
            try:
                await asyncio.to_thread(gateway.keys.reload)
                await self.reload_deployments()
            except Exception:  # a background runner must survive a database hiccup
                log.exception("reloading keys or deployments failed; keeping the cached ones")

    async def _probe_loop(self) -> None:
        """Probe the deployments that ask for it (``probe_seconds``), each on its own schedule."""
        due: dict[str, float] = {}
        while True:
            await asyncio.sleep(PROBE_TICK)
            now = time.monotonic()
            probes = []
            for dep in self.gateway.router.deployments:
                interval = dep.config.probe_seconds
                if interval is None or dep.unavailable is not None or due.get(dep.name, 0.0) > now:
                    continue
                due[dep.name] = now + interval
                probes.append(self._probe(dep))
            if probes:
                await asyncio.gather(*probes)

    async def _probe(self, dep: Deployment) -> None:
        health = self.gateway.router.health
        try:
            await dep.provider.probe()
        except DizuoError as exc:
            log.warning("probe of %s failed: %s", dep.name, exc)
            health.probed(dep.name, ok=False)
        else:
            health.probed(dep.name, ok=True)

    async def reload_deployments(self) -> bool:
        """Swap in a new router when run-time deployments changed; return whether one was swapped in.

        Unchanged deployments keep their adapter (no model reload) and every one keeps its health.
        """
        if self.catalog is None or self.build is None or not await asyncio.to_thread(self.catalog.changed):
            return False
        config = await asyncio.to_thread(self.catalog.effective)
        try:
            fresh = self.build(config)
        except ConfigError:
            log.exception("a run-time deployment cannot be built; keeping the current ones")
            return False
        router = self.gateway.router
        old = {dep.name: dep for dep in router.deployments}
        kept = []
        for dep in fresh:
            same = old.get(dep.name)
            if same is not None and same.config == dep.config:
                kept.append(same)
            else:
                await self._start(dep)
                kept.append(dep)
        self.gateway.router = Router(kept, dict(config.routing), router.health)
        return True
