"""The model registry: :func:`register_model` (a class decorator), :func:`create_model`, :func:`list_models`.

Each family module under :mod:`aedenoise.models` registers its classes here when it is
imported; :mod:`aedenoise.models` imports them all, so the registry is full as soon as
the package is.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from aedenoise.errors import ConfigError
from aedenoise.models.base import Denoiser


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Denoiser]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, description: str) -> Callable[[type[Denoiser]], type[Denoiser]]:
    """Class decorator: make ``name`` buildable through :func:`create_model`."""

    def decorate(cls: type[Denoiser]) -> type[Denoiser]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, cls, description)
        return cls

    return decorate


def list_models() -> list[str]:
    """Names of all registered model architectures, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def create_model(name: str, **arch: Any) -> Denoiser:
    """Build a freshly initialised model ``name`` with architecture arguments ``arch``.

    Unknown argument names raise :class:`ConfigError` (no silent typos).
    """
    entry = model_entry(name)
    params = inspect.signature(entry.builder).parameters
    unknown = sorted(set(arch) - set(params))
    if unknown:
        raise ConfigError(
            f"model {name!r} takes no argument(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(params) or 'none'}"
        )
    model = entry.builder(**arch)
    bound = inspect.signature(entry.builder).bind(**arch)
    bound.apply_defaults()
    # The JSON form (tuples as lists), so ``arch`` compares equal after a checkpoint round trip.
    model.arch = {"name": name, "args": {k: _json_form(v) for k, v in bound.arguments.items()}}
    return model


def _json_form(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_json_form(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_form(v) for k, v in value.items()}
    return value
