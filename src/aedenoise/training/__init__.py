"""Training denoisers: the loop (one process or ``torchrun``), greedy pretraining, optimizers, losses.

``loop.py`` is the loop a reader follows on one screen (``train``) and the end of a run
(``finish_run``: test scores, metrics, report); ``greedy.py`` pretrains stacked models
stage by stage; ``optimizers.py`` and ``muon.py`` the optimizers; ``losses.py`` the
losses; ``distributed.py`` the process group. May import every lower layer (benchmark
scoring and report included), never denoising's file driver or cli.
"""

from aedenoise.training.greedy import greedy_pretrain
from aedenoise.training.loop import FINAL, LAST, TrainResult, build_model, build_training_data, finish_run, train
from aedenoise.training.losses import build_loss
from aedenoise.training.muon import MuonAdam
from aedenoise.training.optimizers import build_optimizer, make_optimizer

__all__ = [
    "FINAL",
    "LAST",
    "MuonAdam",
    "TrainResult",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_training_data",
    "finish_run",
    "greedy_pretrain",
    "make_optimizer",
    "train",
]
