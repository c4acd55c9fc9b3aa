"""Which denoiser runs: a checkpoint file, shipped weights or a classical method, made to fit the image.

* :func:`load_denoiser`: a checkpoint file, shipped weights or a classical method by name;
  :func:`default_model_for`: the shipped photo default for gray or color images.
* :func:`adapt_channels`: a gray model on an RGB image denoises each channel as a gray
  image (noise is independent per channel; a luminance-only pass would leave the color
  noise); a color model on a gray image gets the gray plane repeated to RGB and its three
  output channels are averaged back to one. Denoisers with ``any_channels`` (the
  classical methods) take both kinds as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from aedenoise.classical import create_baseline, list_baselines
from aedenoise.denoising.tiling import model_label
from aedenoise.errors import ConfigError
from aedenoise.export import OnnxDenoiser, cached_onnx
from aedenoise.models import Denoiser, list_models, load_checkpoint
from aedenoise.pretrained import default_pretrained, list_pretrained, load_pretrained, model_card, pretrained_weights

Backend = Literal["torch", "onnxruntime"]


def load_denoiser(spec: str | os.PathLike[str], *, device: torch.device | str = "cpu",
                  backend: Backend = "torch") -> Denoiser:
    """The denoiser named by ``spec``, on ``device``, in eval mode.

    ``spec`` is a checkpoint file (``*.safetensors``), an exported ``*.onnx`` file, the name
    of shipped weights (:func:`aedenoise.pretrained.list_pretrained`) or a classical method
    (:func:`aedenoise.classical.list_baselines`). ``backend="onnxruntime"`` runs a learned
    model through onnxruntime (exported once into the user cache; CPU only). Raises
    :class:`ConfigError` for an unknown name (listing the choices), :class:`CheckpointError`
    for a bad file.
    """
    text = os.fspath(spec)
    path = Path(text)
    if backend not in ("torch", "onnxruntime"):
        raise ConfigError(f"unknown backend {backend!r}; use torch or onnxruntime")
    if backend == "onnxruntime" and torch.device(device).type != "cpu":
        raise ConfigError("the onnxruntime backend runs on the CPU here; use --device cpu or --backend torch")
    if path.suffix.lower() == ".onnx":
        return OnnxDenoiser(path).eval()
    if path.suffix.lower() == ".safetensors" or path.is_file():
        model = load_checkpoint(path, map_location=device).model
        card = None
    elif text in list_pretrained():
        model = load_pretrained(text, device=device)
        card = model_card(text)
    elif text in list_baselines():
        if backend == "onnxruntime":
            raise ConfigError(f"{text} is a classical method: it runs in numpy/scipy, not onnxruntime; use --backend torch")
        model = create_baseline(text)
    else:
        hint = (f" ({text!r} is an architecture: train it with 'aedenoise train' and pass the checkpoint)"
                if text in list_models() else "")
        raise ConfigError(
            f"unknown model {text!r}{hint}; give a checkpoint file (*.safetensors), shipped weights "
            f"({', '.join(list_pretrained()) or 'none installed'}) or a classical method "
            f"({', '.join(list_baselines()) or 'none available'})"
        )
    if backend == "onnxruntime":
        size = fixed_onnx_size(text if not path.is_file() else None, model)
        return OnnxDenoiser(cached_onnx(model.cpu(), name=path.name if path.is_file() else text, card=card,
                                        size=size)).eval()
    return model.to(device).eval()


def fixed_onnx_size(shipped: str | None, model: Denoiser) -> tuple[int, int] | None:
    """The one image size an ONNX export of ``model`` must have, or ``None`` (any size).

    ``res_ae_global``'s global context depends on the image size: the shipped Fashion-MNIST
    weights export for 28x28; a checkpoint of it cannot run on onnxruntime without a size.
    """
    if model.arch.get("name") != "res_ae_global":
        return None
    if shipped is not None and pretrained_weights(shipped).task == "fashion-mnist":
        return (28, 28)
    raise ConfigError("res_ae_global depends on the image size: export it with 'aedenoise export CKPT --onnx F "
                      "--size H W' and pass F as the model, or use --backend torch")


def default_model_for(channels: int, *, noise: str = "gaussian") -> str:
    """The ``spec`` used when no model is given, for gray (1) or color (3) images.

    ``noise``: ``"camera"`` (real photos) or ``"gaussian"`` (white noise of a known level);
    where no default for that kind is shipped, the other kind's is used. The one hook for
    shipped defaults: raises :class:`ConfigError` when no default weights are installed
    for that kind of image.
    """
    return default_pretrained(channels, noise=noise)


CAMERA_MIN_SIGMA: dict[int, float] = {1: 6 / 255, 3: 10 / 255}
"""The least level (``[0, 1]`` scale, by channel count) a Gaussian-noise default is told on
photos with camera noise (``noise="camera"``, ``sigma="auto"``). Real camera noise is
correlated by demosaicing, in-camera processing and JPEG, and the white-noise estimator
barely sees it (it reads 0.2/255 on average on PolyU-Canon, whose noise has a standard
deviation near 4/255), yet a Gaussian-noise network needs to be told about 10/255 (RGB) or
5-8/255 (gray) to remove it. Chosen on PolyU-Canon (validation only, never trained on);
measured in ``docs/real-photos.md``: RGB 36.2 -> 38.7 dB there, at a cost on an already
clean photo of 38.0 dB / SSIM 0.963 against the untouched input (CBSD68)."""


def camera_min_sigma(model: Denoiser, channels: int, noise: str) -> float:
    """The floor of :data:`CAMERA_MIN_SIGMA` that applies to ``model`` (a shipped default) on
    ``channels``-channel images with ``noise``: 0 unless the noise is ``"camera"`` and the model
    takes a level."""
    if noise != "camera" or not getattr(model, "uses_sigma", False):
        return 0.0
    return CAMERA_MIN_SIGMA.get(channels, 0.0)


def photo_noise(sigma: object) -> str:
    """The kind of default an image gets when no model is named, from the ``sigma`` asked for.

    A level given as a number means white Gaussian noise of that level (``"gaussian"``: the
    defaults that take a level); none or ``"auto"`` means a photo's own noise (``"camera"``).
    """
    return "gaussian" if isinstance(sigma, (int, float)) and not isinstance(sigma, bool) else "camera"


class _ChannelAdapter(Denoiser):
    """``inner`` applied to ``channels``-channel images: a gray model per channel (channels
    folded into the batch), or a color model on gray (plane repeated, outputs averaged)."""

    def __init__(self, inner: Denoiser, channels: int) -> None:
        super().__init__()
        self.inner, self.in_channels, self.arch = inner, channels, inner.arch
        self.size_multiple, self.receptive_field = inner.size_multiple, inner.receptive_field
        self.uses_sigma, self.shuffle_stride = inner.uses_sigma, inner.shuffle_stride

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        b, c, h, w = y.shape
        if self.inner.in_channels == 3:
            return self.inner(y.expand(-1, 3, -1, -1), sigma).mean(dim=1, keepdim=True)
        if isinstance(sigma, Tensor) and sigma.ndim > 0:
            sigma = sigma.reshape(-1).expand(b).repeat_interleave(c)
        return self.inner(y.reshape(b * c, 1, h, w), sigma).reshape(b, c, h, w)


def adapt_channels(model: Denoiser, channels: int) -> Denoiser:
    """``model`` made to take ``channels`` (1 or 3) channel images; itself when it already does."""
    have = int(getattr(model, "in_channels", 1))
    if have == channels or model.any_channels:  # e.g. the classical methods take both natively
        return model
    if have == 1 or (have == 3 and channels == 1):
        return _ChannelAdapter(model, channels)
    raise ConfigError(f"{model_label(model)} takes {have}-channel images; cannot apply it to {channels} channels")
