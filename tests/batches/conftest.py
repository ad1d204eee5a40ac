"""The compute tests' Ray head: one per test worker, shared by every module here (a fixture imported
into each module would be one per module: a head each, 15 s and 600 MB apiece)."""

from tests.support.ray import ray_head

__all__ = ["ray_head"]
