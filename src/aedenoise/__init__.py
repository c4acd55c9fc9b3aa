"""aedenoise: image denoising with convolutional autoencoders.

Images are float32 tensors ``[B, C, H, W]`` (or ``[C, H, W]`` for one image) with
values in ``[0, 1]``; noise levels ``sigma`` are on the same ``[0, 1]`` scale
(``sigma * 255`` appears only in reports and on the command line).
"""

__version__ = "0.1.0"

from aedenoise.errors import AedenoiseError
from aedenoise.models import Denoiser, create_model, list_models

__all__ = ["AedenoiseError", "Denoiser", "create_model", "list_models", "__version__"]
