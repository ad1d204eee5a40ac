"""Scenario apps built on the platform's public pieces (knowledge bases, the gateway's models)."""
