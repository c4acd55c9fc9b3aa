"""Noise: seeded models of it, and estimating its level from a noisy image.

``synthetic.py`` holds the noise models (small classes drawing from a ``torch.Generator``,
levels on the ``[0, 1]`` scale); ``level.py`` estimates a Gaussian noise level blindly
(``--sigma auto``). May import only the top-level shared modules (errors).
"""

from aedenoise.noise.level import estimate_sigma
from aedenoise.noise.synthetic import (
    ComposeNoise,
    GaussianNoise,
    NoiseModel,
    PoissonNoise,
    SaltPepperNoise,
    SpeckleNoise,
    noisy_batch,
)

__all__ = [
    "ComposeNoise",
    "GaussianNoise",
    "NoiseModel",
    "PoissonNoise",
    "SaltPepperNoise",
    "SpeckleNoise",
    "estimate_sigma",
    "noisy_batch",
]
