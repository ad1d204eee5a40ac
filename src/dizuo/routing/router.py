"""Choosing the order in which to try an alias's deployments, by the alias's strategy.

Strategies (``routing:`` in the config, per alias; default ``priority``):

- ``priority``: priority groups (0 first), weighted random inside a group, later groups as fallbacks;
- ``weighted``: weighted random over all deployments;
- ``least-inflight``: fewest calls in flight first;
- ``latency``: lowest moving-average latency first (time to first token for streams, total time
  otherwise); deployments with no sample yet go first, so that they get one;
- ``cost``: lowest price first (input + output per million tokens; unpriced last);
- ``local-first``: the organization's own region first (by priority), spilling over to the others.

Data-class clearance filters first (:meth:`Router.eligible`, cached per alias, class and region);
then :meth:`Router.order` yields deployments lazily: the first costs a bisect or one pass, and the
full order is worked out only when a failover asks for more. An open circuit or a full deployment is
skipped when the call is made (see :mod:`dizuo.gateway.calls`).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from dizuo.routing.clearance import clear, clearance_row, filed
from dizuo.routing.deployments import Deployment
from dizuo.routing.health import Health

__all__ = ["STRATEGIES", "Pool", "Router", "Strategy"]

Strategy = Literal["priority", "weighted", "least-inflight", "latency", "cost", "local-first"]
STRATEGIES: tuple[str, ...] = ("priority", "weighted", "least-inflight", "latency", "cost", "local-first")
_UNPRICED = Decimal("Infinity")


@dataclass(slots=True)
class _Group:
    """Deployments of one priority, with cumulative weights for a bisect pick."""

    deps: list[Deployment]
    cumulative: list[float]
    total: float

    @classmethod
    def of(cls, deps: list[Deployment]) -> _Group:
        return cls(
            deps,
            list(itertools.accumulate(float(d.config.weight) for d in deps)),
            float(sum(d.config.weight for d in deps)),
        )

    def order(self) -> Iterator[Deployment]:
        """Yield the group in weighted random order; the first pick is one bisect."""
        if len(self.deps) == 1 or self.total <= 0:
            yield from _weighted_order(self.deps)
            return
        first = self.deps[
            min(bisect.bisect_right(self.cumulative, random.random() * self.total), len(self.deps) - 1)
        ]
        yield first
        yield from _weighted_order([d for d in self.deps if d is not first])


@dataclass(slots=True)
class Pool:
    """The deployments one kind of call may use, prepared for every strategy."""

    deps: list[Deployment]
    groups: list[_Group]
    everyone: _Group
    by_cost: list[Deployment]
    home: list[_Group] = field(default_factory=list)  # local-first: the organization's region
    away: list[_Group] = field(default_factory=list)


def _groups(deps: list[Deployment]) -> list[_Group]:
    by_priority: dict[int, list[Deployment]] = defaultdict(list)
    for dep in deps:
        by_priority[dep.config.priority].append(dep)
    return [_Group.of(by_priority[p]) for p in sorted(by_priority)]


def _price(dep: Deployment) -> Decimal:
    if dep.price_in is None or dep.price_out is None:
        return _UNPRICED
    return dep.price_in + dep.price_out


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
        self._by_alias: dict[str, list[Deployment]] = defaultdict(list)
        for dep in deployments:
            self._by_alias[dep.alias].append(dep)
        self._modes = {dep.alias: dep.mode for dep in deployments}
        self._pools: dict[tuple[str, str, str | None, bool], Pool] = {}

    def aliases(self) -> list[str]:
        """Return every alias, sorted."""
        return sorted(self._by_alias)

    def writes(self, alias: str, lang: str) -> bool:
        """Whether every deployment of *alias* writes *lang* well (one that names no languages writes
        any; an unknown alias is left to the gateway to refuse)."""
        return all(
            dep.config.languages is None or lang in dep.config.languages
            for dep in self._by_alias.get(alias, ())
        )

    def mode(self, alias: str) -> str | None:
        """Return "chat" or "embedding" for *alias*, or None when unknown."""
        return self._modes.get(alias)

    def eligible(
        self, alias: str, data_class: str = "general", org_region: str | None = None, public: bool = False
    ) -> Pool:
        """Return the deployments of *alias* cleared for *data_class* (503 when none is) and, for an
        organization serving the public, filed (403 when none is). Cached."""
        key = (alias, data_class, org_region, public)
        pool = self._pools.get(key)
        if pool is None:
            deps = clear(alias, self._by_alias.get(alias, []), data_class, org_region)
            if public:
                deps = filed(alias, deps)
            pool = Pool(deps, _groups(deps), _Group.of(deps), sorted(deps, key=_price))
            if self.strategies.get(alias) == "local-first":
                pool.home = _groups([d for d in deps if d.config.region == org_region])
                pool.away = _groups([d for d in deps if d.config.region != org_region])
            self._pools[key] = pool
        return pool

    def order(self, alias: str, pool: Pool) -> Iterator[Deployment]:
        """Yield *pool*'s deployments in the order the alias's strategy tries them."""
        if len(pool.deps) == 1:
            yield pool.deps[0]
            return
        strategy = self.strategies.get(alias, "priority")
        if strategy == "priority":
            for group in pool.groups:
                yield from group.order()
        elif strategy == "weighted":
            yield from pool.everyone.order()
        elif strategy == "cost":
            yield from pool.by_cost
        elif strategy == "local-first":
            for group in (*pool.home, *pool.away):
                yield from group.order()
        else:
            yield from self._by_stat(pool.deps, strategy)

    def _by_stat(self, deps: list[Deployment], strategy: str) -> Iterator[Deployment]:
        stats = self.health.stats
        if strategy == "least-inflight":

            def score(dep: Deployment) -> float:
                entry = stats.get(dep.name)
                return entry.in_flight if entry else 0
        else:  # latency: unmeasured first, so that each gets a sample

            def score(dep: Deployment) -> float:
                entry = stats.get(dep.name)
                return -1.0 if entry is None or entry.latency is None else entry.latency

        first = min(deps, key=score)
        yield first
        yield from sorted((d for d in deps if d is not first), key=score)

    def describe(self) -> list[dict[str, Any]]:
        """Every deployment with its placement, clearance, price, strategy and health."""
        health = self.health
        rows = []
        for dep in self.deployments:
            config = dep.config
            rows.append(
                {
                    "name": dep.name,
                    "model": dep.alias,
                    "mode": dep.mode,
                    "provider": dep.provider.spec.name,
                    "region": config.region,
                    "cloud": config.cloud,
                    "accelerator": config.accelerator,
                    "data_class_max": config.data_class_max,
                    "core_cross_region": config.core_cross_region,
                    "clearance": clearance_row(dep),
                    "filing": config.filing.model_dump() if config.filing is not None else None,
                    "priority": config.priority,
                    "weight": config.weight,
                    "limits": config.limits.model_dump(),
                    "price_cny_per_million": None
                    if dep.price_in is None
                    else {"input": str(dep.price_in), "output": str(dep.price_out)},
                    "languages": config.languages,
                    "strategy": self.strategies.get(dep.alias, "priority"),
                    "available": dep.unavailable is None,
                    "unavailable": dep.unavailable,
                    "health": {**health.of(dep.name).as_dict(), "state": health.state(dep.name)},
                }
            )
        return rows

    def candidates(self, alias: str, org_region: str | None = None) -> list[Deployment]:
        """Return every deployment of *alias* in the order the strategy would try them (no clearance)."""
        if alias not in self._by_alias:
            return []
        return list(self.order(alias, self.eligible(alias, "general", org_region)))


def _weighted_order(group: list[Deployment]) -> list[Deployment]:
    """Order *group* by weighted random sampling without replacement (weight 0: only as last resort)."""
    if len(group) <= 1:
        return list(group)
    # Efraimidis-Spirakis: sort by u^(1/w); one pass, no repeated draws.
    keyed = []
    for dep in group:
        weight = dep.config.weight
        key = random.random() ** (1.0 / weight) if weight > 0 else -1.0
        keyed.append((key, dep))
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [dep for _, dep in keyed]
