"""Agents (智能体): definitions an organization writes, versions it publishes, and the loop that runs
them server-side when a client calls ``agent/NAME`` like a model."""
