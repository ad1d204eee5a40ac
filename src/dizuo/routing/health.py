"""Passive health of each deployment: calls in flight, a moving average of latency, and a circuit breaker.

A deployment whose calls fail ``failure_threshold`` times in a row (connect errors, 429, 5xx,
timeouts before the first byte) is opened: skipped for ``cooldown`` seconds, then half-open, when
one call is let through as a probe. The probe's success closes the circuit; its failure opens it
again. Everything is per worker, in memory, and touched only from the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitState", "Health", "Stats"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CircuitState = str
# Weight of the newest sample in the latency average: about the last ten calls count.
EWMA_ALPHA = 0.2


@dataclass(slots=True)
class Stats:
    in_flight: int = 0
    latency: float | None = None  # seconds: time to first token for streams, total time otherwise
    calls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    state: CircuitState = CLOSED
    opened_at: float = 0.0
    probing: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "in_flight": self.in_flight,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
            "calls": self.calls,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
        }


class Health:
    def __init__(
        self, failure_threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self.stats: dict[str, Stats] = {}

    def of(self, name: str) -> Stats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = Stats()
        return stats

    def state(self, name: str) -> CircuitState:
        """Return the circuit's state now (an open circuit past its cooldown reads half-open)."""
        stats = self.of(name)
        if stats.state == OPEN and self._clock() - stats.opened_at >= self.cooldown:
            stats.state = HALF_OPEN
            stats.probing = False
        return stats.state

    def admit(self, name: str) -> bool:
        """Return whether a call may go to *name* now; a half-open circuit admits one probe."""
        state = self.state(name)
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self.of(name).probing:
            self.of(name).probing = True
            return True
        return False

    def started(self, name: str) -> None:
        self.of(name).in_flight += 1

    def finished(self, name: str) -> None:
        stats = self.of(name)
        stats.in_flight = max(0, stats.in_flight - 1)

    def succeeded(self, name: str, seconds: float) -> None:
        """Record a good answer and its latency; closes a half-open circuit."""
        stats = self.of(name)
        stats.calls += 1
        stats.consecutive_failures = 0
        stats.latency = (
            seconds if stats.latency is None else (1 - EWMA_ALPHA) * stats.latency + EWMA_ALPHA * seconds
        )
        stats.state = CLOSED
        stats.probing = False

    def probed(self, name: str, ok: bool) -> None:
        """Record an active probe: success closes the circuit, failure counts like a failed call."""
        if ok:
            stats = self.of(name)
            stats.consecutive_failures = 0
            stats.state = CLOSED
            stats.probing = False
        else:
            self.failed(name)

    def failed(self, name: str) -> None:
        """Record a failed attempt; opens the circuit at the threshold, or again after a failed probe."""
        stats = self.of(name)
        stats.calls += 1
        stats.failures += 1
        stats.consecutive_failures += 1
        if stats.state == HALF_OPEN or stats.consecutive_failures >= self.failure_threshold:
            stats.state = OPEN
            stats.opened_at = self._clock()
            stats.probing = False
