"""The one registry of providers. Built-in presets register here exactly as a plugin would."""

from __future__ import annotations

from dizuo.errors import ConfigError
from dizuo.providers.base import ProviderSpec

__all__ = ["get", "names", "register", "specs"]

_SPECS: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec) -> ProviderSpec:
    """Register *spec* under its name; a second registration of a name is a mistake."""
    if spec.name in _SPECS:
        raise ValueError(f"provider {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


def get(name: str, where: str = "") -> ProviderSpec:
    """Return the provider *name*; the error lists the known ones."""
    try:
        return _SPECS[name]
    except KeyError:
        known = ", ".join(sorted(_SPECS))
        raise ConfigError(f"{where}provider: unknown provider {name!r}; known providers: {known}") from None


def names() -> list[str]:
    """Return the names of all registered providers, sorted."""
    return sorted(_SPECS)


def specs() -> list[ProviderSpec]:
    """Return all registered provider specs, sorted by name."""
    return [_SPECS[name] for name in names()]
