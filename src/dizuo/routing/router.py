"""Choosing the order in which to try an alias's deployments, by the alias's strategy.

Strategies (``routing:`` in the config, per alias; default ``priority``):

- ``priority``: priority groups (0 first), weighted random inside a group, later groups as fallbacks;
- ``weighted``: weighted random over all deployments;
- ``least-inflight``: fewest calls in flight first;
- ``latency``: lowest moving-average latency first (time to first token for streams, total time
  otherwise); deployments with no sample yet go first, so that they get one;
- ``cost``: lowest price first (input + output per million tokens; unpriced last);
- ``local-first``: the organization's own region first (by priority), spilling over to the others.

Whatever the strategy, a deployment whose circuit is open or that is at capacity is skipped when
the call is made (see :mod:`dizuo.gateway.calls`), and data-class clearance filters first.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal
from typing import Literal

from dizuo.routing.deployments import Deployment
from dizuo.routing.health import Health

__all__ = ["STRATEGIES", "Router", "Strategy"]

Strategy = Literal["priority", "weighted", "least-inflight", "latency", "cost", "local-first"]
STRATEGIES: tuple[str, ...] = ("priority", "weighted", "least-inflight", "latency", "cost", "local-first")
_UNPRICED = Decimal("Infinity")


class Router:
    """The deployments of every alias, and the order in which to try them for one call."""

    def __init__(
        self,
        deployments: list[Deployment],
        strategies: dict[str, str] | None = None,
        health: Health | None = None,
    ) -> None:
        self.deployments = deployments
        self.health = health or Health()
        self.strategies = dict(strategies or {})
        groups: dict[str, dict[int, list[Deployment]]] = defaultdict(lambda: defaultdict(list))
        for dep in deployments:
            groups[dep.alias][dep.config.priority].append(dep)
        self._groups: dict[str, list[list[Deployment]]] = {
            alias: [by_priority[p] for p in sorted(by_priority)] for alias, by_priority in groups.items()
        }
        self._all: dict[str, list[Deployment]] = {
            alias: [d for g in gs for d in g] for alias, gs in self._groups.items()
        }
        self._modes = {dep.alias: dep.mode for dep in deployments}

    def aliases(self) -> list[str]:
        """Return every alias, sorted."""
        return sorted(self._groups)

    def mode(self, alias: str) -> str | None:
        """Return "chat" or "embedding" for *alias*, or None when unknown."""
        return self._modes.get(alias)

    def candidates(self, alias: str, org_region: str | None = None) -> list[Deployment]:
        """Return the deployments to try for *alias*, in order; empty when the alias is unknown."""
        groups = self._groups.get(alias)
        if not groups:
            return []
        if len(groups) == 1 and len(groups[0]) == 1:
            return groups[0]
        strategy = self.strategies.get(alias, "priority")
        everyone = self._all[alias]
        if strategy == "priority":
            return [dep for group in groups for dep in _weighted_order(group)]
        if strategy == "weighted":
            return _weighted_order(everyone)
        if strategy == "least-inflight":
            stats = self.health
            return sorted(
                _weighted_order(everyone), key=lambda d: (stats.of(d.name).in_flight, d.config.priority)
            )
        if strategy == "latency":
            stats = self.health

            def latency(dep: Deployment) -> float:
                value = stats.of(dep.name).latency
                return -1.0 if value is None else value

            return sorted(everyone, key=latency)
        if strategy == "cost":
            return sorted(_weighted_order(everyone), key=_price)
        # local-first: the organization's region, then everything else, each by priority
        ordered = [dep for group in groups for dep in _weighted_order(group)]
        return [d for d in ordered if d.config.region == org_region] + [
            d for d in ordered if d.config.region != org_region
        ]


def _price(dep: Deployment) -> Decimal:
    if dep.price_in is None or dep.price_out is None:
        return _UNPRICED
    return dep.price_in + dep.price_out


def _weighted_order(group: list[Deployment]) -> list[Deployment]:
    """Order *group* by weighted random sampling without replacement (weight 0: only as last resort)."""
    if len(group) == 1:
        return list(group)
    # Efraimidis-Spirakis: sort by u^(1/w); one pass, no repeated draws.
    keyed = []
    for dep in group:
        weight = dep.config.weight
        key = random.random() ** (1.0 / weight) if weight > 0 else -1.0
        keyed.append((key, dep))
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [dep for _, dep in keyed]
