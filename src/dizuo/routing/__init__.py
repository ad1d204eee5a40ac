"""Deployments, and choosing among them for each call."""

from dizuo.routing.deployments import (
    LOCAL_CHAT,
    LOCAL_EMBEDDING,
    Deployment,
    build_deployments,
    local_deployments,
)
from dizuo.routing.router import Router

__all__ = ["LOCAL_CHAT", "LOCAL_EMBEDDING", "Deployment", "Router", "build_deployments", "local_deployments"]
