"""Before ``aedenoise adapt`` trains: is the noise one the self-supervised objectives can learn?

Neighbor2Neighbor, Noise2Void and R2R assume noise independent from pixel to pixel. On noise
that neighbouring pixels share (camera JPEGs after demosaicing and noise reduction, resampled
or blurred images) they learn to keep it, while their own validation score still improves,
so the drift guard cannot see it. :func:`check_independent_noise` measures what the start
model removes from the held-back patches and refuses such images unless forced.
"""

from __future__ import annotations

import torch
from torch import Tensor

from aedenoise.errors import ConfigError
from aedenoise.models import Denoiser
from aedenoise.training.adapt import VAL_BATCH, AdaptPlan, Log
from aedenoise.training.inputs import told_level

CORRELATION_LIMIT = 0.1
"""Above this neighbour correlation of what the start model removes, the noise is taken to be correlated
(``aedenoise adapt`` prints it; the values measured from ``color-blind`` are in docs/self-supervised.md)."""


def removed_noise_correlation(model: Denoiser, y: Tensor, sigma: Tensor | None) -> float:
    """The correlation between horizontally and vertically adjacent pixels of ``y - model(y, sigma)``.

    ``y``: noisy patches ``[N, C, P, P]``, ``sigma`` ``[N]`` or ``None``. What a denoiser removes
    from independent noise is close to white (about 0 or below); from noise shared by
    neighbours (demosaiced, compressed, resampled) it is correlated. Neighbor2Neighbor,
    Noise2Void and R2R all assume the first: on the second they learn to keep the noise.
    """
    model.eval()
    with torch.inference_mode():
        r = torch.cat([y[i : i + VAL_BATCH] - model(y[i : i + VAL_BATCH], None if sigma is None else sigma[i : i + VAL_BATCH])
                       for i in range(0, y.shape[0], VAL_BATCH)]).double()
    model.train()
    r = r - r.mean(dim=(-2, -1), keepdim=True)

    def corr(a: Tensor, b: Tensor) -> float:
        return float((a * b).sum() / (a.square().sum().sqrt() * b.square().sum().sqrt()).clamp_min(1e-30))

    return 0.5 * (corr(r[..., 1:], r[..., :-1]) + corr(r[..., 1:, :], r[..., :-1, :]))


def check_independent_noise(plan: AdaptPlan, *, force: bool, log: Log = print) -> float:
    """Refuse (:class:`ConfigError`) to adapt where the noise is correlated between neighbouring pixels
    (:func:`removed_noise_correlation` on the held-back patches above :data:`CORRELATION_LIMIT`),
    unless ``force``; returns the correlation."""
    if plan.constant:
        return 0.0
    cfg = plan.config.objective
    sigma = told_level(plan.level, plan.data.val_y, given=cfg.sigma, carried=plan.data.val_sigma)
    rho = removed_noise_correlation(plan.model, plan.data.val_y, sigma)
    log(f"neighbour correlation of the noise {plan.start.label} removes: {rho:.2f} (above {CORRELATION_LIMIT:g}: correlated)")
    if rho > CORRELATION_LIMIT:
        message = (f"the noise {plan.start.label} removes from these images is correlated between neighbouring pixels "
                   f"(correlation {rho:.2f}; independent noise gives about 0): {cfg.kind} assumes independent noise and "
                   f"would learn to keep this noise, so adapting would make the model worse on these images")
        if not force:
            raise ConfigError(f"{message}; not adapted (--force adapts anyway; docs/self-supervised.md)")
        log(f"{message}; adapting anyway (--force)")
    return rho
