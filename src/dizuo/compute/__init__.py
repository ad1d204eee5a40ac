"""Compute: pools of accelerators on Ray clusters in several regions, and where a job runs.

Built so far: the pools' configuration (``dizuo.config.PoolConfig``) and placement, explained
(:mod:`dizuo.compute.placement`). Jobs on Ray, their holds and charges, and the API come next.
"""
