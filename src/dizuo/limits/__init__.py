"""Rate limits (RPM, TPM, concurrency) per key and per organization."""

from dizuo.limits.base import Limit, Limiter, Permit, RateState, Subject
from dizuo.limits.memory import MemoryLimiter

__all__ = ["Limit", "Limiter", "MemoryLimiter", "Permit", "RateState", "Subject"]
