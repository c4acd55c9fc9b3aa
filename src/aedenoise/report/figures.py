"""Figures of a training run, drawn with matplotlib's object API (no global pyplot state).

Pixels are always shown on the fixed ``[0, 1]`` scale (gray images: ``vmin=0, vmax=1``;
colour images clamped to ``[0, 1]``) with nearest-neighbour interpolation: no
per-image contrast stretch, so noise and blur look as they are. matplotlib is
imported lazily; :func:`require_matplotlib` raises one clear error without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from torch import Tensor

from aedenoise.atomic import atomic_path
from aedenoise.errors import AedenoiseError

INSTALL_HINT = "matplotlib is not installed, so no figures were drawn; pip install 'aedenoise[report]' and run `aedenoise report RUN_DIR`"


class MissingMatplotlib(AedenoiseError):
    """The optional ``report`` extra is missing."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingMatplotlib(INSTALL_HINT) from None


def show_image(ax: Any, img: Tensor) -> Any:
    """Draw one ``[C, H, W]`` image in ``[0, 1]`` on ``ax`` at the fixed scale; returns the AxesImage."""
    ax.set_axis_off()
    if img.shape[0] == 1:
        return ax.imshow(img[0].float().numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    return ax.imshow(img.float().clamp(0, 1).permute(1, 2, 0).numpy(), vmin=0.0, vmax=1.0, interpolation="nearest")


def comparison_grid(
    path: str | Path,
    rows: Sequence[tuple[str, Tensor]],
    *,
    captions: Sequence[Sequence[str]] | None = None,
    title: str | None = None,
) -> Path:
    """A grid: one row per ``(label, images [N, C, H, W])``, one column per image.

    ``captions[r][i]`` (optional) is printed under image ``i`` of row ``r``.
    Written atomically as PNG to ``path``.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    n = rows[0][1].shape[0]
    fig = Figure(figsize=(1.25 * n + 0.9, 1.45 * len(rows) + (0.4 if title else 0)), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for i in range(n):
            ax = axes[r][i]
            show_image(ax, images[i])
            if captions is not None and captions[r][i]:
                ax.set_title(captions[r][i], fontsize=7, y=-0.2)
        axes[r][0].text(-0.08, 0.5, label, transform=axes[r][0].transAxes, rotation=90, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def training_curves(path: str | Path, history: Sequence[dict[str, float]], *, noisy_psnr: float | None = None) -> Path:
    """Loss (train and validation) and validation PSNR per epoch, side by side."""
    require_matplotlib()
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    loss_ax, psnr_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    loss_ax.legend()
    psnr_ax.plot(epochs, [h["val_psnr"] for h in history], "o-", color="C2", label="denoised")
    if noisy_psnr is not None:
        psnr_ax.axhline(noisy_psnr, color="gray", linestyle="--", label="noisy input")
    psnr_ax.set(xlabel="epoch", ylabel="PSNR (dB)", title="validation PSNR")
    psnr_ax.legend()
    for ax in (loss_ax, psnr_ax):
        ax.grid(alpha=0.3)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    return save_png(fig, path)


def save_png(fig: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)
