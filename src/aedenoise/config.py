"""Typed run configuration: pydantic models that reject unknown keys.

A training run is described by one :class:`TrainConfig`, from a preset
(:data:`PRESETS`), a TOML file (``configs/*.toml``) or both, plus command-line
overrides. Every run writes its resolved configuration to ``config.json``.
Noise levels are on the [0, 1] scale here (``0.2`` = 51/255).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aedenoise.errors import ConfigError
from aedenoise.noise import CameraNoise, CorrelatedGaussianNoise, GaussianNoise, MixtureNoise, NoiseModel, PoissonNoise, SaltPepperNoise, SpeckleNoise

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoiseConfig(_Strict):
    """One noise model. ``kind`` picks which of the other fields apply.

    ``kind = "mixture"``: each image gets one of ``components`` (noise tables of their own),
    chosen with probabilities ``weights`` (default: equal).
    """

    kind: Literal["gaussian", "correlated_gaussian", "poisson", "salt_pepper", "speckle", "camera", "mixture"] = "gaussian"
    sigma: float = Field(0.1, ge=0, le=1, description="Gaussian/speckle std on [0, 1]")
    sigma_max: float | None = Field(None, ge=0, le=1, description="if set, sigma ~ U[sigma, sigma_max] per image")
    clip: bool = False
    peak: float = Field(30.0, gt=0, description="Poisson peak")
    blur: int = Field(3, ge=1, description="correlated_gaussian: the box window the white noise is averaged over (odd)")
    amount: float = Field(0.05, ge=0, le=1, description="salt-and-pepper fraction")
    shot_min: float = Field(1e-4, gt=0, le=1, description="camera: smallest shot-noise gain (linear raw scale)")
    shot_max: float = Field(0.012, gt=0, le=1, description="camera: largest shot-noise gain (log-uniform between)")
    jpeg: tuple[int, int] | None = Field((70, 95), description="camera: JPEG quality range, or none")
    smooth_max: float = Field(0.0, ge=0, le=8, description="camera: in-camera noise reduction, noise blurred by up to this many pixels (std)")
    grain_max: float = Field(1.0, ge=1, le=8, description="camera: noise made at 1/g of the resolution, g ~ U[1, grain_max], and enlarged")
    components: tuple["NoiseConfig", ...] = Field((), description="mixture: the noise models, one per image")
    weights: tuple[float, ...] | None = Field(None, description="mixture: their probabilities (normalised; default equal)")

    @model_validator(mode="after")
    def _check(self) -> "NoiseConfig":
        if self.kind == "mixture":
            if not self.components:
                raise ValueError("noise.components is required for kind = 'mixture'")
            if self.weights is not None and len(self.weights) != len(self.components):
                raise ValueError(f"noise.weights has {len(self.weights)} values for {len(self.components)} components")
        elif self.components or self.weights is not None:
            raise ValueError(f"noise.components and noise.weights apply to kind = 'mixture' only (kind is {self.kind!r})")
        return self

    def build(self) -> NoiseModel:
        if self.kind == "gaussian":
            return GaussianNoise(self.sigma, clip=self.clip, sigma_max=self.sigma_max)
        if self.kind == "poisson":
            return PoissonNoise(self.peak)
        if self.kind == "correlated_gaussian":
            return CorrelatedGaussianNoise(self.sigma, blur=self.blur)
        if self.kind == "salt_pepper":
            return SaltPepperNoise(self.amount)
        if self.kind == "camera":
            return CameraNoise(self.shot_min, self.shot_max, jpeg=self.jpeg, smooth_max=self.smooth_max,
                               grain_max=self.grain_max)
        if self.kind == "mixture":
            return MixtureNoise(tuple(c.build() for c in self.components), weights=self.weights)
        return SpeckleNoise(self.sigma, clip=self.clip)


class ModelConfig(_Strict):
    name: str = "conv_ae"
    args: dict[str, Any] = Field(default_factory=dict, description="architecture arguments (checked by create_model)")


class DataConfig(_Strict):
    """Training data: Fashion-MNIST, random patches from image folders, or patches of noisy images alone.

    ``kind = "noisy_folder"``: ``train_dirs`` hold noisy images and no clean image exists
    anywhere in the run (a self-supervised ``[objective]`` is required; no noise is added).
    ``fixed_noise = true`` (``image_folder``): each image gets its noise drawn once, seeded by
    its index, and every patch is cut from that one noisy copy, as a user's own noisy
    photographs would be (:mod:`aedenoise.data.noisy`).
    """

    kind: Literal["fashion_mnist", "image_folder", "noisy_folder"] = "fashion_mnist"
    data_dir: str | None = Field(None, description="Fashion-MNIST folder (default: search order)")
    train_dirs: tuple[str, ...] = Field((), description="image folders to train on (image_folder)")
    channels: int = Field(1, ge=1, le=3)
    patch_size: int = Field(64, ge=8)
    patches_per_epoch: int = Field(6400, ge=1)
    val_count: int = Field(5000, ge=1, description="images (FMNIST) or patches held out for validation")
    scales: tuple[float, ...] = Field((1.0,), description="image_folder: each training image is also used resized by these factors (finer structure per pixel below 1)")
    color_jitter: bool = Field(False, description="image_folder, RGB: random channel order and saturation x U[0.5, 1.6] per patch")
    fixed_noise: bool = Field(False, description="image_folder: one noisy copy of each image, its noise drawn once (seeded by the image's index); patches are cut from those copies")

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.kind in ("image_folder", "noisy_folder") and not self.train_dirs:
            raise ValueError(f"data.train_dirs is required for kind = {self.kind!r}")
        if self.fixed_noise and self.kind != "image_folder":
            raise ValueError(f"data.fixed_noise applies to kind = 'image_folder' only (kind is {self.kind!r})")
        if (self.fixed_noise or self.kind == "noisy_folder") and (self.scales != (1.0,) or self.color_jitter):
            raise ValueError("data.scales and data.color_jitter would change the noise of noisy images; "
                             "leave them out with fixed_noise or kind = 'noisy_folder'")
        if self.channels not in (1, 3):
            raise ValueError("data.channels must be 1 or 3")
        if not self.scales or any(not 0.1 <= f <= 1 for f in self.scales):
            raise ValueError(f"data.scales must be factors in [0.1, 1] (got {list(self.scales)})")
        if self.color_jitter and (self.kind != "image_folder" or self.channels != 3):
            raise ValueError("data.color_jitter applies to RGB image folders only (kind = 'image_folder', channels = 3)")
        return self


class OptimConfig(_Strict):
    name: Literal["adam", "adamw", "sgd", "muon"] = Field("adam", description="adam, adamw, sgd, or muon: Muon for convolution kernels and Adam for the rest (aedenoise.training.muon)")
    lr: float = Field(1e-3, gt=0)
    muon_lr: float | None = Field(None, gt=0, description="optimizer muon: the kernels' learning rate, on Adam's scale (default: lr)")
    weight_decay: float = Field(0.0, ge=0)
    loss: Literal["mse", "l1", "psnr"] = Field("mse", description="mse, l1, or psnr: minus the mean per-image PSNR of the clamped output (aedenoise.training.losses; greedy pretraining stages use mse then)")
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr: float = Field(0.0, ge=0, description="final learning rate of the cosine schedule")

    @model_validator(mode="after")
    def _check(self) -> "OptimConfig":
        if self.muon_lr is not None and self.name != "muon":
            raise ValueError(f"optim.muon_lr applies to optimizer 'muon' only (optim.name is {self.name!r})")
        return self


ObjectiveKind = Literal["supervised", "neighbor2neighbor", "n2v", "r2r"]
SELF_SUPERVISED: tuple[str, ...] = ("neighbor2neighbor", "n2v", "r2r")

#: The objective each setting belongs to (``None``: every self-supervised one).
_OBJECTIVE_FIELDS: dict[str, str | None] = {
    "gamma": "neighbor2neighbor", "mask_fraction": "n2v", "n2v2": "n2v", "alpha": "r2r", "sigma": None,
}


class ObjectiveConfig(_Strict):
    """What training minimises (:mod:`aedenoise.training.selfsupervised`, docs/self-supervised.md).

    ``supervised``: ``optim.loss`` between the output and the clean image. The others need
    noisy images only: ``neighbor2neighbor`` (Huang et al. 2021), ``n2v`` (Noise2Void, Krull
    et al. 2019; N2V2 replacement with ``n2v2``) and ``r2r`` (Recorrupted-to-Recorrupted, Pang
    et al. 2021; Gaussian noise of a known or estimated level). A setting of another kind
    than ``kind`` must keep its default (no silent no-op).
    """

    kind: ObjectiveKind = "supervised"
    gamma: float = Field(2.0, ge=0, description="neighbor2neighbor: weight of the regulariser (the paper's 2)")
    mask_fraction: float = Field(0.01, gt=0, le=0.1, description="n2v: fraction of each patch's pixels masked (the paper: 0.002)")
    n2v2: bool = Field(False, description="n2v: masked pixels get the median of their 5x5 neighbourhood without the centre (N2V2) instead of a random neighbour")
    alpha: float = Field(0.5, gt=0, le=10, description="r2r: recorruption strength (the paper's 0.5)")
    sigma: float | None = Field(None, ge=0, le=1, description="self-supervised: the known Gaussian noise level on [0, 1] (r2r's recorruption level, and the level given to models that read one); default: estimated per image")

    @model_validator(mode="after")
    def _check(self) -> "ObjectiveConfig":
        for name, owner in _OBJECTIVE_FIELDS.items():
            applies = self.kind == owner if owner else self.kind != "supervised"
            if not applies and getattr(self, name) != ObjectiveConfig.model_fields[name].default:
                target = f"kind = {owner!r}" if owner else "the self-supervised kinds"
                raise ValueError(f"objective.{name} applies to {target} only (objective.kind is {self.kind!r})")
        return self

    @property
    def self_supervised(self) -> bool:
        return self.kind != "supervised"

    def settings(self) -> dict[str, Any]:
        """``kind`` and the settings that apply to it (for metadata and messages)."""
        return {"kind": self.kind, **{name: getattr(self, name) for name, owner in _OBJECTIVE_FIELDS.items()
                                      if (self.kind == owner if owner else self.self_supervised)}}


class TrainConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    threads: int | None = Field(None, ge=1, description="CPU threads (default: one per idle core, see train.choose_threads)")
    amp: bool | Literal["auto"] = Field(False, description="bfloat16 autocast: true, false, or auto (where bfloat16 is native: CUDA, CPUs with AVX512-BF16 or AMX)")
    channels_last: bool = Field(False, description="channels-last tensors on the CPU (faster oneDNN convolutions; not for conv_ae's fast path)")
    hflip: bool = Field(False, description="flip each training image left-right with probability 1/2")
    eval_batch_size: int = Field(1000, ge=1)
    test_seed: int = Field(1234, description="seed of the fixed test-set noise (same for every model)")
    init_weights: str | None = Field(None, description="start from these weights (a checkpoint file with the same architecture) instead of a random init; fine-tuning")
    greedy_epochs_per_stage: int = Field(0, ge=0, description="greedy layer-wise pretraining epochs per stage before end-to-end training (0 = none; stacked models)")

    @model_validator(mode="after")
    def _check_objective(self) -> "TrainConfig":
        ss = self.objective.self_supervised
        if self.data.kind == "noisy_folder":
            if not ss:
                raise ValueError("data.kind = 'noisy_folder' holds no clean images: set objective.kind to "
                                 f"one of {', '.join(SELF_SUPERVISED)}")
            if self.noise != NoiseConfig():
                raise ValueError("[noise] does not apply to data.kind = 'noisy_folder' (the images are noisy "
                                 "already, nothing is added): remove the [noise] table")
        if self.greedy_epochs_per_stage and (ss or self.data.fixed_noise or self.data.kind == "noisy_folder"):
            raise ValueError("greedy_epochs_per_stage needs supervised training on clean data with noise "
                             "added per batch")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class AdaptConfig(_Strict):
    """``aedenoise adapt``: fine-tune a trained model on noisy images alone (:mod:`aedenoise.training.adapt`).

    The budget is ``steps`` (total, counting steps done before a resume) or ``minutes``
    (wall clock of one invocation), whichever ends first; ``None`` leaves that one out.
    Validation: ``val_fraction`` of the images' area is held back (whole cells, fixed by
    ``seed``), ``val_count`` patches of it are scored with the objective before the first
    step and every ``val_every`` steps; the best-scoring weights are the output.
    """

    objective: ObjectiveConfig = Field(default_factory=lambda: ObjectiveConfig(kind="neighbor2neighbor"))
    steps: int | None = Field(300, ge=1, description="total optimizer steps (None: no step limit)")
    minutes: float | None = Field(10.0, gt=0, description="wall-clock limit of one invocation in minutes (None: none)")
    patch_size: int = Field(64, ge=8, description="training patch side in pixels (shrunk to fit small images)")
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-4, gt=0, description="Adam learning rate")
    seed: int = 0
    val_every: int = Field(25, ge=1, description="validate every this many steps (and at the end)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the images' cells held back for validation")
    val_count: int = Field(32, ge=1, description="validation patches cut from the held-back cells")
    threads: int | None = Field(None, ge=1, description="CPU threads (default: one per idle core)")

    @model_validator(mode="after")
    def _check(self) -> "AdaptConfig":
        if not self.objective.self_supervised:
            raise ValueError(f"adapt needs a self-supervised objective ({', '.join(SELF_SUPERVISED)}), not 'supervised'")
        if self.steps is None and self.minutes is None:
            raise ValueError("give a budget: steps, minutes or both")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial setting: Gaussian sigma 0.2 clipped, 10 epochs, batch 32, Adam lr 1e-3, MSE.
    "fmnist-seed": {
        "model": {"name": "conv_ae"},
        "noise": {"kind": "gaussian", "sigma": 0.2, "clip": True},
        "data": {"kind": "fashion_mnist"},
        "optim": {"name": "adam", "lr": 1e-3, "loss": "mse"},
        "epochs": 10,
        "batch_size": 32,
    },
    # The stronger Fashion-MNIST model at the seed's noise: res_ae_global (res_ae with GELU and a
    # fully connected global-context block, 0.9 M params), mirror-image self-ensemble at test time;
    # 8 epochs, batch 32, Adam lr 2e-3 cosine to 1e-5, PSNR loss, random left-right flips,
    # bfloat16 where the CPU has it, channels-last (docs/models-fmnist.md).
    "fmnist-best": {
        "model": {"name": "res_ae_global", "args": {"width": 16, "blocks": 1, "activation": "gelu", "global_hidden": 256,
                                                    "flip_ensemble": True}},
        "noise": {"kind": "gaussian", "sigma": 0.2, "clip": True},
        "data": {"kind": "fashion_mnist"},
        "optim": {"name": "adam", "lr": 2e-3, "loss": "psnr", "schedule": "cosine", "min_lr": 1e-5},
        "epochs": 8,
        "batch_size": 32,
        "amp": "auto",
        "channels_last": True,
        "hflip": True,
    },
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(
    *,
    preset: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Preset, then config file, then overrides (nested dicts), validated."""
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(list_presets())}")
        data = _merge(data, PRESETS[preset])
    if config_file is not None:
        data = _merge(data, load_toml(config_file))
    data = _merge(data, overrides or {})
    return validate_config(data, source=str(config_file or preset or "options"))


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir() or (not p.exists() and p.with_suffix(".toml").is_file()):
        p = p / "config.toml" if p.is_dir() else p.with_suffix(".toml")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: invalid TOML ({err})") from None


def validate_config(data: dict[str, Any], *, source: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid configuration: {_problems(err)}") from None


def validate_adapt_config(data: dict[str, Any], *, source: str = "options") -> AdaptConfig:
    """``data`` as an :class:`AdaptConfig`; :class:`ConfigError` naming every problem."""
    try:
        return AdaptConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid adapt settings: {_problems(err)}") from None


def _problems(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in err.errors())
