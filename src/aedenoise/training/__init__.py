"""Training denoisers: the loop (one process or ``torchrun``), self-supervised objectives, ``aedenoise adapt``,
greedy pretraining, optimizers, losses.

``loop.py`` is the loop a reader follows on one screen (``train``) and the end of a run
(``finish_run``: test scores, metrics, report); ``inputs.py`` what a step and validation
get (noisy input, level, clean target); ``selfsupervised.py`` the objectives that need
no clean image (Neighbor2Neighbor, Noise2Void/N2V2, Recorrupted-to-Recorrupted);
``adapt.py`` fine-tuning on a user's noisy images (``aedenoise adapt``); ``greedy.py``
pretrains stacked models stage by stage; ``optimizers.py`` and ``muon.py`` the
optimizers; ``losses.py`` the losses; ``distributed.py`` the process group. May import
every lower layer (benchmark scoring and report included), never denoising's file driver
or cli.
"""

from aedenoise.training.adapt import AdaptResult, adapt, plan_adaptation, resolve_start
from aedenoise.training.greedy import greedy_pretrain
from aedenoise.training.loop import FINAL, LAST, TrainResult, build_model, build_training_data, finish_run, train
from aedenoise.training.losses import build_loss
from aedenoise.training.muon import MuonAdam
from aedenoise.training.optimizers import build_optimizer, make_optimizer
from aedenoise.training.selfsupervised import Neighbor2Neighbor, Noise2Void, Recorrupted2Recorrupted, build_objective

__all__ = [
    "FINAL",
    "LAST",
    "AdaptResult",
    "MuonAdam",
    "Neighbor2Neighbor",
    "Noise2Void",
    "Recorrupted2Recorrupted",
    "TrainResult",
    "adapt",
    "build_loss",
    "build_model",
    "build_objective",
    "build_optimizer",
    "build_training_data",
    "finish_run",
    "greedy_pretrain",
    "make_optimizer",
    "plan_adaptation",
    "resolve_start",
    "train",
]
