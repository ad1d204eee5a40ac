"""Data-risk guard: find personal information and secrets in prompts and answers; log, redact or block."""

from dizuo.guard.detect import ENTITY_TYPES, Entity, Scanner, scan

__all__ = ["ENTITY_TYPES", "Entity", "Scanner", "scan"]
