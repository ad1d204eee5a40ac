"""Choosing deployments for a model alias.

Today: priority groups (0 first), weighted random inside a group, the other groups as fallbacks.
The routing issue adds strategies, health, capacity and data-class clearance behind this interface.
"""

from __future__ import annotations

import random
from collections import defaultdict

from dizuo.routing.deployments import Deployment

__all__ = ["Router"]


class Router:
    """The deployments of every alias, and the order in which to try them for one call."""

    def __init__(self, deployments: list[Deployment]) -> None:
        self.deployments = deployments
        groups: dict[str, dict[int, list[Deployment]]] = defaultdict(lambda: defaultdict(list))
        for dep in deployments:
            groups[dep.alias][dep.config.priority].append(dep)
        self._groups: dict[str, list[list[Deployment]]] = {
            alias: [by_priority[p] for p in sorted(by_priority)] for alias, by_priority in groups.items()
        }
        self._modes = {dep.alias: dep.mode for dep in deployments}

    def aliases(self) -> list[str]:
        """Return every alias, sorted."""
        return sorted(self._groups)

    def mode(self, alias: str) -> str | None:
        """Return "chat" or "embedding" for *alias*, or None when unknown."""
        return self._modes.get(alias)

    def candidates(self, alias: str) -> list[Deployment]:
        """Return the deployments to try for *alias*, in order; empty when the alias is unknown."""
        groups = self._groups.get(alias)
        if not groups:
            return []
        if len(groups) == 1 and len(groups[0]) == 1:
            return groups[0]
        ordered: list[Deployment] = []
        for group in groups:
            ordered.extend(_weighted_order(group))
        return ordered


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
