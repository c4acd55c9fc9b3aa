"""Time one training step and one inference batch of the seed ``conv_ae`` on each CPU path.

    python benchmarks/conv_ae_step.py --threads 2 --json runs/bench-step.json

Paths: the compiled kernel (``aedenoise.models.conv_ae_native``), the matrix-product
formulation (``ConvAEFunction``) and the plain ``nn`` layers, all on the same random
batch. A training step is what ``aedenoise.training`` does per batch (Gaussian noise, forward,
MSE, backward, fused Adam), timed as the median of ``--repeats`` runs of ``--steps``
steps; inference is a forward pass under ``torch.inference_mode`` at ``--infer-batch``.
With the kernel, torch itself runs on one thread inside ``kernel_threads`` as in training.
Re-executes itself with glibc's malloc trim/mmap thresholds raised (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--keep-torch-threads", action="store_true",
                   help="kernel path without kernel_threads: torch keeps --threads OpenMP threads")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's table for 200 kernel steps")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if any(os.environ.get(k) != v for k, v in _MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC})

    import torch

    from aedenoise.models import create_model
    from aedenoise.models.conv_ae_fast import fast_conv_ae, kernel_threads
    from aedenoise.noise import GaussianNoise, noisy_batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("conv_ae")
    nets = {"kernel": fast_conv_ae(model), "matrix products": fast_conv_ae(model, native=False), "nn layers": model}
    if nets["kernel"].path != "native":
        del nets["kernel"]  # no compiler here
    noise = GaussianNoise(sigma=0.2, clip=True)
    x = torch.rand(args.batch, 1, 28, 28)
    x_big = torch.rand(args.infer_batch, 1, 28, 28)
    results: dict[str, dict[str, float]] = {}
    for name, net in nets.items():
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
        g = torch.Generator().manual_seed(0)

        def step() -> None:
            y, _ = noisy_batch(noise, x, g)
            loss = torch.nn.functional.mse_loss(net(y), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def timed(fn, n: int) -> float:
            fn()  # warm-up
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                runs.append((time.perf_counter() - t0) / n)
            return statistics.median(runs)

        own_threads = name == "kernel" and not args.keep_torch_threads
        with kernel_threads(net) if own_threads else nullcontext():
            step_ms = timed(lambda: [step() for _ in range(20)], max(1, args.steps // 20)) / 20 * 1e3
            if args.profile and name == "kernel":
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(200):
                        step()
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        with torch.inference_mode():
            infer_s = timed(lambda: net(x_big), 20)
        results[name] = {"train_step_ms": step_ms, "infer_images_per_s": args.infer_batch / infer_s}
        print(f"{name:16s} training step {step_ms:6.2f} ms (batch {args.batch})   "
              f"inference {args.infer_batch / infer_s:9,.0f} images/s (batch {args.infer_batch})", flush=True)
    record = {"threads": args.threads, "keep_torch_threads": args.keep_torch_threads, "batch": args.batch, "infer_batch": args.infer_batch, "torch": torch.__version__,
              "load_average": os.getloadavg()[0], "paths": results}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
