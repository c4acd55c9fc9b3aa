"""Time one training step of the ``fmnist-best`` model for one batch size and optimizer, optionally profiled.

Builds the preset's model and recipe pieces (channels-last, bfloat16 autocast where the CPU
has it, PSNR loss), runs ``--warmup`` steps on one random batch, then ``--repeats`` timed
blocks of ``--steps`` steps, and prints the median milliseconds per step and per image.
``--profile`` adds a torch.profiler table (self CPU time per operator, grouped by input
shapes); ``--compile`` times the ``torch.compile``-d model instead. One setting per process: a second model timed in the same process can run 20 %
slower or faster than in a fresh one. Run it on an idle machine with glibc's malloc
thresholds raised (see docs/benchmarks.md), e.g.::

    export MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824
    for b in 32 64 128; do for o in adam muon; do
        python benchmarks/fmnist_step_time.py --threads 2 --batch-size $b --optimizer $o; done; done
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from aedenoise.config import resolve_config
from aedenoise.hardware import native_bf16
from aedenoise.models import create_model
from aedenoise.training.losses import build_loss
from aedenoise.training.optimizers import make_optimizer


def training_step(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[[Tensor, Tensor], Tensor], *,
                  batch_size: int, bf16: bool) -> Callable[[], None]:
    """A function that runs one training step of ``model`` on a fixed batch of random 28x28
    images with Gaussian noise (sigma 0.2, clipped), channels-last, under bfloat16 autocast if ``bf16``."""
    x = torch.rand(batch_size, 1, 28, 28)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(y).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def median_ms(step: Callable[[], None], *, warmup: int, steps: int, repeats: int) -> float:
    """Median over ``repeats`` blocks of ``steps`` calls of ``step`` (after ``warmup`` calls), in ms per call."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="fmnist-best")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", default="adam", choices=("adam", "muon"))
    p.add_argument("--muon-lr", type=float, default=5e-3)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default mode; the first step's compile time is printed)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    config = resolve_config(preset=args.preset)
    bf16 = native_bf16(torch.device("cpu"))
    loss_fn = build_loss(config.optim.loss)
    print(f"{args.preset}: {config.model.name} {config.model.args}, {args.threads} threads, bfloat16 autocast: {bf16}")
    torch.manual_seed(0)
    model = create_model(config.model.name, **config.model.args).to(memory_format=torch.channels_last)
    opt = make_optimizer(args.optimizer, list(model.parameters()), lr=config.optim.lr, weight_decay=0.0, muon_lr=args.muon_lr)
    net = torch.compile(model, dynamic=False) if args.compile else model
    step = training_step(net, opt, loss_fn, batch_size=args.batch_size, bf16=bf16)
    t0 = time.perf_counter()
    step()
    if args.compile:
        print(f"first step (compiles): {time.perf_counter() - t0:.1f} s", flush=True)
    ms = median_ms(step, warmup=args.warmup, steps=args.steps, repeats=args.repeats)
    print(f"batch {args.batch_size}, {args.optimizer}{', compiled' if args.compile else ''}: {ms:.2f} ms per step, {ms / args.batch_size:.3f} ms per image", flush=True)
    if args.profile:
        from torch.profiler import profile

        with profile(record_shapes=True) as prof:
            for _ in range(50):
                step()
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=20, max_shapes_column_width=70))


if __name__ == "__main__":
    main()
