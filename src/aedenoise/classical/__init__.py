"""Classical denoisers (Gaussian, median, TV, wavelet, non-local means, BM3D) behind the ``Denoiser`` contract.

``denoisers.py`` holds them, with their parameters as documented functions of sigma
tuned on training images; scipy, scikit-image and bm3d are imported only when a method
runs (extras ``classical`` and ``bm3d``). May import: models (the contract) and the
top-level shared modules.
"""

from aedenoise.classical.denoisers import (
    BM3D,
    KNOTS_255,
    ClassicalDenoiser,
    GaussianFilter,
    MedianFilter,
    NonLocalMeans,
    TotalVariation,
    WaveletShrink,
    create_baseline,
    list_baselines,
)

__all__ = [
    "BM3D",
    "KNOTS_255",
    "ClassicalDenoiser",
    "GaussianFilter",
    "MedianFilter",
    "NonLocalMeans",
    "TotalVariation",
    "WaveletShrink",
    "create_baseline",
    "list_baselines",
]
