"""Checkpoints: safetensors weights plus JSON metadata, never pickle.

A checkpoint is one ``.safetensors`` file. Its header metadata holds a JSON
document with everything needed to rebuild the model (``model.name`` and
``model.args`` for :func:`aedenoise.models.create_model`), plus the noise, data,
epoch, metrics and package version. Training checkpoints also hold the
optimizer state (tensors under ``optim/``, the rest in the JSON), for ``--resume``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aedenoise.atomic import atomic_path
from aedenoise.errors import CheckpointError, ConfigError
from aedenoise.models.base import Denoiser
from aedenoise.models.registry import create_model
from aedenoise.version import __version__

FORMAT = "aedenoise-checkpoint/1"
_MODEL_PREFIX = "model/"
_OPTIM_PREFIX = "optim/"


@dataclass
class Checkpoint:
    model: Denoiser
    metadata: dict[str, Any]
    optimizer_state: dict[str, Any] | None = field(default=None)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Denoiser,
    *,
    metadata: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Write ``model`` (and optionally ``optimizer``) to ``path`` atomically."""
    from safetensors.torch import save_file

    if not model.arch:
        raise ValueError("model was not built by create_model(); its architecture is unknown")
    tensors = {_MODEL_PREFIX + k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "package_version": __version__, "model": model.arch, **(metadata or {})}
    if optimizer is not None:
        optim_tensors, optim_json = _flatten_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
        meta["optimizer"] = optim_json
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"aedenoise": json.dumps(meta)})


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("aedenoise")
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a valid safetensors file ({err})") from err
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without aedenoise metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupt metadata ({err})") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model stored at ``path``; raises :class:`CheckpointError` on any mismatch."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    arch = meta.get("model") or {}
    try:
        model = create_model(arch["name"], **arch.get("args", {}))
    except (KeyError, ConfigError, TypeError) as err:
        raise CheckpointError(f"{path}: cannot rebuild model {arch!r}: {err}") from err
    try:
        tensors = load_file(str(path), device=str(map_location))
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from err
    state = {k[len(_MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit architecture {arch.get('name')!r} ({first})") from err
    model.to(map_location)
    optim = None
    if "optimizer" in meta:
        optim = _unflatten_optimizer({k: v for k, v in tensors.items() if k.startswith(_OPTIM_PREFIX)}, meta.pop("optimizer"))
    return Checkpoint(model=model, metadata=meta, optimizer_state=optim)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, Tensor):
                tensors[f"{_OPTIM_PREFIX}{pid}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name[len(_OPTIM_PREFIX):].split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    # JSON turned tuple hyper-parameters (Adam's ``betas``, Rprop's ``etas``) into lists.
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}
