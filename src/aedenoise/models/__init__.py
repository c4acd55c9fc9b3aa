"""Models: the ``Denoiser`` contract, the registry, each architecture, and checkpoints.

``base.py`` holds the contract ``x_hat = model(y, sigma)``; ``registry.py``
``create_model`` / ``list_models``; one module per family registers itself there;
``pixel_shuffle.py`` runs any of them on pixel-shuffled sub-images (correlated noise);
``checkpoint.py`` saves and rebuilds models as safetensors + JSON metadata. Models never
download weights when built (shipped weights: :mod:`aedenoise.pretrained`).
May import: the top-level shared modules (errors, atomic, paths, hardware, version).
"""

from aedenoise.models.base import Denoiser, sigma_map
from aedenoise.models.registry import ModelEntry, create_model, list_models, model_entry, register_model

# The built-in families register themselves on import.
from aedenoise.models import conv_ae  # noqa: E402,F401
from aedenoise.models import res_ae  # noqa: E402,F401
from aedenoise.models import stacked_ae  # noqa: E402,F401
from aedenoise.models import unet  # noqa: E402,F401
from aedenoise.models import dncnn  # noqa: E402,F401
from aedenoise.models import pixel_shuffle  # noqa: E402,F401
from aedenoise.models.checkpoint import Checkpoint, load_checkpoint, read_metadata, save_checkpoint  # noqa: E402

__all__ = [
    "Checkpoint",
    "Denoiser",
    "ModelEntry",
    "create_model",
    "list_models",
    "load_checkpoint",
    "model_entry",
    "read_metadata",
    "register_model",
    "save_checkpoint",
    "sigma_map",
]
