"""Noise: seeded models of it, and estimating its level from a noisy image.

``synthetic.py`` holds the noise models (small classes drawing from a ``torch.Generator``,
levels on the ``[0, 1]`` scale); ``camera.py`` real camera noise (raw shot and read noise,
demosaicing, JPEG) for training; ``level.py`` estimates a Gaussian noise level blindly
(``--sigma auto``). May import only the top-level shared modules (errors).
"""

from aedenoise.noise.camera import CameraNoise
from aedenoise.noise.level import estimate_sigma
from aedenoise.noise.synthetic import (
    ComposeNoise,
    CorrelatedGaussianNoise,
    GaussianNoise,
    MixtureNoise,
    NoiseModel,
    PoissonNoise,
    SaltPepperNoise,
    SpeckleNoise,
    noisy_batch,
)

__all__ = [
    "CameraNoise",
    "ComposeNoise",
    "CorrelatedGaussianNoise",
    "GaussianNoise",
    "MixtureNoise",
    "NoiseModel",
    "PoissonNoise",
    "SaltPepperNoise",
    "SpeckleNoise",
    "estimate_sigma",
    "noisy_batch",
]
