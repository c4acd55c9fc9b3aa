"""ONNX: export a learned denoiser, and run an exported one with onnxruntime behind the ``Denoiser`` contract.

:func:`export_onnx` writes a graph with the input ``y`` ``[B, C, H, W]`` float32 in ``[0, 1]``
(batch, height and width dynamic; any size, padded inside the graph to the model's
``size_multiple`` by repeating the last row and column, then cropped back), the input
``sigma`` ``[B]`` (noise level on the ``[0, 1]`` scale) where the model reads one, and the
output ``x_hat`` like ``y``, clamped to ``[0, 1]``. The model card and what a runtime needs
to know (architecture, channels, ``uses_sigma``, ``size_multiple``, ``receptive_field``)
travel as the model's metadata. Every export is checked at once: onnxruntime against
PyTorch on two odd sizes (:data:`CHECK_SIZES`, at most :data:`TOLERANCE` apart).

:class:`OnnxDenoiser` runs such a file with onnxruntime (``pip install 'aedenoise[onnx]'``).
onnx, onnxscript and onnxruntime are imported only here, when used.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedenoise.atomic import atomic_path
from aedenoise.errors import AedenoiseError, CheckpointError, ConfigError, DataError
from aedenoise.models import Denoiser
from aedenoise.paths import user_cache_dir
from aedenoise.version import __version__

TOLERANCE = 1e-4
"""Largest absolute difference allowed between onnxruntime's and PyTorch's outputs."""
CHECK_SIZES = ((37, 45), (29, 70))
META_KEY = "aedenoise"
INSTALL_HINT = "pip install 'aedenoise[onnx]' (onnx, onnxscript, onnxruntime)"


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise AedenoiseError(f"ONNX needs {', '.join(missing)}: {INSTALL_HINT}")


class _Graph(nn.Module):
    """What is exported: pad to the model's multiple (edge), run, crop, clamp."""

    def __init__(self, model: Denoiser) -> None:
        super().__init__()
        self.model, self.k = model, int(model.size_multiple)

    def run(self, y: Tensor, sigma: Tensor | None) -> Tensor:
        h, w = y.shape[-2], y.shape[-1]
        ph, pw = (self.k - h % self.k) % self.k, (self.k - w % self.k) % self.k
        padded = F.pad(y, (0, pw, 0, ph), mode="replicate")
        return self.model(padded, sigma)[..., :h, :w].clamp(0, 1)


class _WithSigma(_Graph):
    def forward(self, y: Tensor, sigma: Tensor) -> Tensor:
        return self.run(y, sigma)


class _Blind(_Graph):
    def forward(self, y: Tensor) -> Tensor:
        return self.run(y, None)


def _metadata(model: Denoiser, *, name: str, card: str | None, size: tuple[int, int] | None) -> dict[str, Any]:
    return {"format": "aedenoise-onnx/1", "package_version": __version__, "name": name, "model": model.arch,
            "in_channels": int(model.in_channels), "uses_sigma": bool(model.uses_sigma),
            "size_multiple": int(model.size_multiple), "receptive_field": int(model.receptive_field),
            "fixed_size": list(size) if size else None, "card": card or ""}


def export_onnx(model: Denoiser, path: str | os.PathLike[str], *, name: str, card: str | None = None,
                size: tuple[int, int] | None = None) -> Path:
    """Export ``model`` (a learned ``Denoiser``) to the ONNX file ``path``, atomically; returns the path.

    ``name``: how the model is known (shipped weights' name or checkpoint file name);
    ``card``: its model card (Markdown), kept in the file's metadata. ``size``: a fixed
    ``(H, W)`` for models whose graph depends on the image size (e.g. ``res_ae_global``);
    default: any size. Raises :class:`ConfigError` for a model that cannot be exported
    (classical methods) or whose export fails the check against PyTorch.
    """
    _require("onnx", "onnxscript", "onnxruntime")
    if getattr(model, "any_channels", False) or not list(model.parameters()):
        raise ConfigError(f"{name}: only learned models export to ONNX (classical methods run numpy/scipy code)")
    model = copy.deepcopy(model).float().cpu().eval()  # the caller's model stays as it is
    graph = _WithSigma(model) if model.uses_sigma else _Blind(model)
    h, w = size or (64, 96)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, model.in_channels, h, w, generator=g)
    sigma = torch.tensor([25 / 255, 50 / 255])
    args = (y, sigma) if model.uses_sigma else (y,)
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims = {0: batch} if size else {0: batch, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    shapes = {"y": dims, "sigma": {0: batch}} if model.uses_sigma else {"y": dims}
    names = ["y", "sigma"] if model.uses_sigma else ["y"]
    target = Path(path)
    with atomic_path(target) as tmp:
        try:
            onnx_log = logging.getLogger("torch.onnx")
            level = onnx_log.level
            onnx_log.setLevel(logging.ERROR)  # its notes (torchvision ops it skips, shape hints): not the user's concern
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    program = torch.onnx.export(graph, args, dynamic_shapes=shapes, input_names=names,
                                                output_names=["x_hat"], dynamo=True, verbose=False)
            finally:
                onnx_log.setLevel(level)
        except Exception as err:  # torch.export's errors are long; the first line says what failed
            raise ConfigError(f"{name}: ONNX export failed ({str(err).strip().splitlines()[0]})") from None
        program.model.metadata_props[META_KEY] = json.dumps(_metadata(model, name=name, card=card, size=size))
        program.save(str(tmp))
        _check(graph, tmp, name=name, channels=model.in_channels, uses_sigma=model.uses_sigma, size=size)
    return target


def _check(graph: nn.Module, path: Path, *, name: str, channels: int, uses_sigma: bool,
           size: tuple[int, int] | None) -> None:
    """onnxruntime against PyTorch on odd sizes; :class:`ConfigError` if they differ or the graph fails."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions, reported below
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for h, w in [size] if size else CHECK_SIZES:
        y = torch.rand(3, channels, h, w, generator=g)
        sigma = torch.tensor([10 / 255, 25 / 255, 50 / 255])
        feed = {"y": y.numpy(), **({"sigma": sigma.numpy()} if uses_sigma else {})}
        try:
            out = session.run(None, feed)[0]
        except Exception as err:
            raise ConfigError(f"{name}: the exported graph fails at {h}x{w} ({str(err).splitlines()[0][:200]}); "
                              f"export it for one size with --size H W") from None
        with torch.inference_mode():
            ref = graph(y, sigma) if uses_sigma else graph(y)
        diff = float(np.abs(out - ref.numpy()).max())
        if not diff <= TOLERANCE:
            raise ConfigError(f"{name}: onnxruntime differs from PyTorch by {diff:.2e} at {h}x{w} "
                              f"(allowed {TOLERANCE:g}); export it for one size with --size H W")


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The aedenoise metadata of an exported file; :class:`CheckpointError` if it has none."""
    _require("onnx")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable ONNX file ({str(err).splitlines()[0][:200]})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in props:
        raise CheckpointError(f"{path}: an ONNX file without aedenoise metadata; export it with 'aedenoise export'")
    return json.loads(props[META_KEY])


class OnnxDenoiser(Denoiser):
    """An exported model run by onnxruntime: ``x_hat = denoiser(y, sigma)`` as for any ``Denoiser``.

    ``threads``: onnxruntime's intra-op threads (default ``torch.get_num_threads()``). Tiling
    pads images to ``size_multiple`` before they reach the graph, as it does for PyTorch
    models, so both backends see the same pixels.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        _require("onnxruntime")
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # failures come back as exceptions
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise CheckpointError(f"{path}: not a readable ONNX file ({str(err).splitlines()[0][:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map  # the file read once, by onnxruntime
        if META_KEY not in props:
            raise CheckpointError(f"{path}: an ONNX file without aedenoise metadata; export it with 'aedenoise export'")
        meta = json.loads(props[META_KEY])
        self.metadata = meta
        self.in_channels, self.uses_sigma = int(meta["in_channels"]), bool(meta["uses_sigma"])
        self.size_multiple, self.receptive_field = int(meta["size_multiple"]), int(meta["receptive_field"])
        self.arch = dict(meta.get("model") or {})
        self.fixed_size = tuple(meta["fixed_size"]) if meta.get("fixed_size") else None

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        if self.fixed_size is not None and tuple(y.shape[-2:]) != self.fixed_size:
            h, w = self.fixed_size
            raise DataError(f"{self.path.name} takes {h}x{w} images only (exported for one size), "
                            f"not {y.shape[-2]}x{y.shape[-1]}")
        feed = {"y": y.detach().to("cpu", torch.float32).contiguous().numpy()}
        if self.uses_sigma:
            if sigma is None:
                raise ConfigError(f"{self.path.name} needs the noise level: give --sigma (0-255) or --sigma auto")
            s = torch.as_tensor(sigma, dtype=torch.float32).detach().cpu().reshape(-1).expand(y.shape[0]).contiguous()
            feed["sigma"] = s.numpy()
        out = self.session.run(None, feed)[0]
        return torch.from_numpy(out).to(y.device)


def cached_onnx(model: Denoiser, *, name: str, card: str | None = None, size: tuple[int, int] | None = None) -> Path:
    """``model`` exported once into ``$XDG_CACHE_HOME/aedenoise/onnx`` (keyed by its weights), for ``--backend onnxruntime``."""
    import onnx
    import onnxruntime

    versions = [__version__, torch.__version__, onnx.__version__, onnxruntime.__version__]
    h = hashlib.sha256(json.dumps([model.arch, versions, size], sort_keys=True, default=str).encode())
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    path = user_cache_dir("onnx") / f"{Path(name).stem}-{h.hexdigest()[:16]}.onnx"
    if not path.is_file():
        export_onnx(model, path, name=name, card=card, size=size)
    return path
