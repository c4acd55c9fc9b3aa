"""torchrun with 2 CPU processes (gloo): identical weights on every rank, equal to one process's, and resume.

The ranks run a tiny stacked autoencoder with greedy pretraining (which averages its
own gradients) and then DistributedDataParallel fine-tuning, through
``python -m torch.distributed.run --standalone``. A small entry script stands in
for ``aedenoise train`` so the test controls the (random, in-memory) data and can
dump each rank's final weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from aedenoise.config import validate_config
from aedenoise.models import create_model
from aedenoise.models.checkpoint import load_checkpoint, read_metadata

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is not available",
    ),
]

CONFIG = {
    "model": {"name": "stacked_ae", "args": {"in_channels": 1, "widths": [8, 16], "convs_per_stage": 1}},
    "noise": {"kind": "gaussian", "sigma": 0.1},
    "batch_size": 8,
    "seed": 3,
    "device": "cpu",
    # SGD keeps float rounding differences (sharded vs whole-batch gradient sums) at ~1e-8;
    # Adam's normalisation would amplify them for near-zero gradients.
    "optim": {"name": "sgd", "lr": 0.05},
    "greedy_epochs_per_stage": 1,
}

ENTRY = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from aedenoise.config import validate_config
    from aedenoise.training.loop import train
    from data import make_data  # beside this script

    config, out, mode, dump = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    result = train(validate_config(config), out, resume=mode == "resume", progress=False, data=make_data())
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, os.path.join(dump, "rank%s.safetensors" % os.environ.get("RANK", "0")))
    """
)

DATA = textwrap.dedent(
    """
    import torch
    from aedenoise.data.sources import TensorData

    def make_data():
        x = torch.rand(80, 1, 16, 16, generator=torch.Generator().manual_seed(42))
        return TensorData(train_x=x[:64], val_x=x[64:])  # 64 = 8 global batches of 8
    """
)


def _load_module(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(tmp: Path, config: dict, out: Path, mode: str, dump: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(tmp / "entry.py"), json.dumps(config), str(out), mode, str(dump)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _lines(log: str, prefix: str) -> list[str]:
    """What follows ``prefix`` up to the double space, for each log line that starts with it."""
    return [line[len(prefix) + 1 :].split("  ")[0] for line in log.splitlines() if line.startswith(prefix + " ")]


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_torchrun_two_processes_match_one_process_and_resume(tmp_path: Path) -> None:
    (tmp_path / "entry.py").write_text(ENTRY)
    (tmp_path / "data.py").write_text(DATA)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()

    # Launch 1: pretraining + 1 epoch; launch 2: resume to epoch 2.
    first = _torchrun(tmp_path, {**CONFIG, "epochs": 1}, out, "fresh", dump)
    assert _lines(first, "greedy stage") == ["1/2 epoch 1/1", "2/2 epoch 1/1"]  # rank 0 alone logs
    assert _lines(first, "epoch") == ["1/1"]
    after_first = read_metadata(out / "last.safetensors")
    second = _torchrun(tmp_path, {**CONFIG, "epochs": 2}, out, "resume", dump)
    assert "greedy" not in second, "pretraining must not run again on resume"
    assert _lines(second, "epoch") == ["2/2"]

    ranks = [_load(dump / f"rank{r}.safetensors") for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0]), "ranks ended with different weights"
    final = load_checkpoint(out / "model.safetensors")
    saved = final.model.state_dict()
    assert all(torch.equal(saved[k], ranks[0][k]) for k in saved), "rank 0's checkpoint is not its model"
    meta = final.metadata
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert meta["history"][0] == after_first["history"][0]
    assert [(g["stage"], g["epoch"]) for g in meta["greedy"]] == [(1, 1), (2, 1)]

    # The same global batches in one process, uninterrupted: the same weights.
    from aedenoise.training.loop import train

    data = _load_module(tmp_path / "data.py", "ddp_test_data").make_data()
    single = train(validate_config({**CONFIG, "epochs": 2}), tmp_path / "single", progress=False, data=data)
    ref = single.model.state_dict()
    worst = max(float((ref[k] - saved[k]).abs().max()) for k in ref)
    assert worst < 1e-5, f"2-process weights differ from the 1-process run by {worst:g}"
    torch.manual_seed(CONFIG["seed"])
    init = create_model("stacked_ae", **CONFIG["model"]["args"]).state_dict()
    assert max(float((ref[k] - init[k]).abs().max()) for k in ref) > 1e-3, "training did not move the weights"
