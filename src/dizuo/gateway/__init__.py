"""The data plane: OpenAI-compatible ``/v1/*`` endpoints over every deployment."""

from dizuo.gateway.app import Gateway

__all__ = ["Gateway"]
