"""The methods under test in a benchmark run: what ``--method SPEC`` becomes.

* :func:`resolve_method`: a classical name, a checkpoint file, shipped weights, or
  ``auto`` (:class:`AutoMethod`: the shipped photo default for each dataset's channel
  count and kind of noise, the model ``aedenoise denoise`` picks without ``--model``).
* :func:`method_key`: a method's identity in the resume cache (name + weights hash).
* :func:`method_for_dataset`: the concrete :class:`Method` to run on a dataset with a
  given channel count and kind of noise, or why none can run there.

:mod:`aedenoise.benchmark.protocol` runs the protocol.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

import aedenoise.denoising.selection as selection
from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser
from aedenoise.pretrained import list_pretrained

AUTO = "auto"
"""The method name that means "the shipped photo default for the dataset's channels"."""
_KIND = {1: "gray", 3: "color"}


@dataclass(frozen=True)
class Method:
    """A denoiser under test: ``name`` is shown in tables, ``key`` identifies it in the cache.

    ``weights``: the name of the shipped weights it runs (:mod:`aedenoise.pretrained`),
    ``None`` for classical methods and checkpoint files. ``min_sigma``: on real noise with
    ``--sigma auto``, the least level it is told (``[0, 1]``; the camera preset of ``auto``,
    :data:`aedenoise.denoising.selection.CAMERA_MIN_SIGMA`; 0 for every other method).
    """

    name: str
    denoiser: Denoiser
    key: str
    weights: str | None = None
    min_sigma: float = 0.0


@dataclass(frozen=True)
class AutoMethod:
    """The method ``auto``: on each dataset the shipped photo default for its channels and noise.

    The same choice as ``aedenoise denoise`` without ``--model``
    (:func:`aedenoise.denoising.selection.default_model_for`): a gray dataset gets the gray
    default, a color dataset the color default; a paired real-noise dataset the default
    for real photos (``noise="camera"``), a synthetic one the Gaussian default
    (``noise="gaussian"``). Each is loaded on first use, once per weights. Its rows are
    named ``auto`` and carry the chosen weights' name in ``weights``.
    """

    device: torch.device | str = "cpu"
    name: str = AUTO
    _loaded: dict[tuple[int, str], Method] = field(default_factory=dict, init=False, compare=False, repr=False)

    def for_channels(self, channels: int, *, noise: str = "gaussian") -> Method:
        """The :class:`Method` for ``channels``-channel (1 or 3) images with ``noise`` ("gaussian" or
        "camera"); :class:`ConfigError` if none is shipped."""
        if (channels, noise) not in self._loaded:
            # looked up here: the one hook for defaults
            weights = selection.default_model_for(channels, noise=noise)
            same = next((m for m in self._loaded.values() if m.weights == weights), None)
            denoiser = same.denoiser if same is not None else selection.load_denoiser(weights, device=self.device)
            floor = selection.camera_min_sigma(denoiser, channels, noise)
            key = same.key if same is not None else method_key(self.name, denoiser)
            key = key.split("+")[0] + (f"+min{floor * 255:g}" if floor else "")
            self._loaded[(channels, noise)] = Method(self.name, denoiser, key, weights=weights, min_sigma=floor)
        return self._loaded[(channels, noise)]


def method_key(name: str, denoiser: Denoiser) -> str:
    """Cache identity of a method: its name plus a hash of its architecture and weights."""
    h = hashlib.sha256(json.dumps(getattr(denoiser, "arch", {}), sort_keys=True, default=str).encode())
    for k, v in denoiser.state_dict().items():
        h.update(f"{k}:{v.dtype}:{tuple(v.shape)}".encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{name}-{h.hexdigest()[:12]}"


def resolve_method(spec: str, *, device: torch.device | str = "cpu") -> Method | AutoMethod:
    """Build the method named by ``spec``: ``auto`` (:class:`AutoMethod`), a classical name,
    a checkpoint path (named by its file stem) or shipped weights (named by themselves)."""
    if spec == AUTO:
        return AutoMethod(device=device)
    denoiser = selection.load_denoiser(spec, device=device)
    path = Path(spec)
    is_file = path.suffix.lower() == ".safetensors" or path.is_file()
    name = path.stem if is_file else spec
    weights = spec if not is_file and spec in list_pretrained() else None
    return Method(name=name, denoiser=denoiser, key=method_key(name, denoiser), weights=weights)


def accepts_channels(denoiser: Denoiser, channels: int) -> bool:
    """Whether ``denoiser`` takes ``channels``-channel images as they are (no per-channel or RGB adapting).

    Denoisers with ``any_channels`` (the classical baselines) take 1 and 3 channels;
    others exactly their ``in_channels``.
    """
    if denoiser.any_channels:
        return channels in (1, 3)
    want = getattr(denoiser, "in_channels", None)
    return want is None or want == channels


def method_for_dataset(
    method: Method | AutoMethod, dataset: str, channels: int, *, noise: str = "gaussian"
) -> tuple[Method | None, str | None]:
    """``(the Method to run, None)`` on a dataset of ``channels``-channel images, or ``(..., why it cannot run)``.

    :class:`AutoMethod` is resolved to the default for ``channels`` and ``noise``
    ("gaussian" for synthetic noise, "camera" for a paired real-noise dataset); a method
    that does not take ``channels`` as they are (:func:`accepts_channels`) cannot run.
    """
    if isinstance(method, AutoMethod):
        try:
            method = method.for_channels(channels, noise=noise)
        except ConfigError:
            kind = _KIND.get(channels, f"{channels}-channel")
            return None, (f"method {AUTO!r}: no default {kind} photo denoiser is installed for {kind} dataset "
                          f"{dataset!r} (shipped weights: {', '.join(list_pretrained()) or 'none'}; see 'aedenoise "
                          f"models'); name a classical method, a checkpoint or shipped weights instead")
    return method, _channel_problem(method, dataset, channels)


def _channel_problem(m: Method, dataset: str, channels: int) -> str | None:
    if accepts_channels(m.denoiser, channels):
        return None
    want, kind = m.denoiser.in_channels, _KIND
    return (f"method {m.name!r} takes {kind.get(want, want)} images ({want} channel(s)) but dataset {dataset!r} is "
            f"{kind.get(channels, channels)} ({channels}); benchmark it on a {kind.get(want, want)} dataset")
