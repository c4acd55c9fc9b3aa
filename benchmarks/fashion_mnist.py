"""Speed and quality of the Fashion-MNIST seed run (``--preset fmnist-seed``) on this machine.

    python benchmarks/fashion_mnist.py --json runs/bench-fmnist.json

Trains the 10-epoch preset (``--repeats`` times, fresh each time), scores it on all
10,000 test images, and times inference at batch 256 (median of ``--infer-repeats``
passes over the test set). For comparison it also times, under the same load, a
naive PyTorch loop (plain ``nn`` layers, default Adam, per-batch indexing and noise;
``--baseline-epochs`` epochs, extrapolated to the preset's 10) and the plain layers'
inference. Other processes on the machine slow every number: the JSON records the
load average before and after.

glibc's malloc returns large freed buffers to the OS by default, and every new
tensor then page-faults; the script re-executes itself with
``MALLOC_TRIM_THRESHOLD_``/``MALLOC_MMAP_THRESHOLD_`` raised (as the Makefile does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": "1073741824", "MALLOC_MMAP_THRESHOLD_": "1073741824"}
# Set to run as on a CPU without AVX-512 (docs/benchmarks.md): torch's kernels, oneDNN, MKL, the compiled kernel.
EMULATION_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "AEDENOISE_NATIVE_ARCH")


def main() -> int:
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, metavar="FILE", help="write the results here")
    p.add_argument("--repeats", type=int, default=1, help="training runs (default 1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: aedenoise's choice)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's 10 epochs (quick checks)")
    p.add_argument("--infer-repeats", type=int, default=5, help="timed inference passes over the test set")
    p.add_argument("--baseline-epochs", type=int, default=2, help="epochs of the naive loop (0: skip it)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder")
    args = p.parse_args()

    import torch

    from aedenoise.config import resolve_config
    from aedenoise.training.loop import choose_threads, finish_run, train

    overrides = {k: v for k, v in {"epochs": args.epochs, "threads": args.threads}.items() if v is not None}
    if args.data_dir:
        overrides["data"] = {"data_dir": args.data_dir}
    config = resolve_config(preset="fmnist-seed", overrides=overrides)
    load_before = os.getloadavg()
    threads = choose_threads(config.threads)
    config = config.model_copy(update={"threads": threads})
    runs = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cpu0 = time.process_time()
            result = train(config, Path(tmp) / "run", progress=False)
            cpu = time.process_time() - cpu0
            metrics = finish_run(result, config)
        runs.append({"train_seconds": result.train_seconds, "train_cpu_seconds": cpu, "train_path": result.fast_path,
                     "train_path_reason": result.fast_path_reason,
                     **{k: metrics["test"][k] for k in ("psnr", "ssim", "noisy_psnr", "noisy_ssim")}})
        print(f"run {r + 1}: {runs[-1]}", flush=True)
    model = result.model
    infer = infer_images_per_s(model, threads, args.infer_repeats, config)
    baseline = naive_baseline(config, threads, args.baseline_epochs) if args.baseline_epochs else None
    out = {
        "train_seconds": statistics.median(r["train_seconds"] for r in runs),
        "train_cpu_seconds": statistics.median(r["train_cpu_seconds"] for r in runs),
        "infer_images_per_s": infer["fast"], "infer_images_per_s_nn_layers": infer["nn"],
        "infer_path": infer["path"], "infer_path_reason": infer["path_reason"],
        **{k: statistics.median(r[k] for r in runs) for k in ("psnr", "ssim", "noisy_psnr", "noisy_ssim")},
        "runs": runs, "repeats": args.repeats, "infer_repeats": args.infer_repeats, "epochs": config.epochs,
        "batch_size": config.batch_size, "threads": threads, "naive_baseline": baseline,
        "torch": torch.__version__, "python": platform.python_version(), "machine": machine_info(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "env": {k: os.environ.get(k) for k in (*MALLOC_ENV, *EMULATION_ENV, "OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("train_seconds", "train_cpu_seconds", "infer_images_per_s", "psnr", "ssim", "threads")}))
    return 0


def infer_images_per_s(model, threads: int, repeats: int, config) -> dict[str, float]:
    """Median images/s over the test set at batch 256: the path aedenoise picks here, and the plain layers."""
    import torch

    from aedenoise.benchmark.scoring import add_noise
    from aedenoise.data.fashion_mnist import load_fashion_mnist
    from aedenoise.models.conv_ae_choice import best_conv_ae

    torch.set_num_threads(threads)
    y, _ = add_noise(load_fashion_mnist(data_dir=config.data.data_dir).test_x, config.noise.build(), seed=config.test_seed)
    model = model.cpu().eval()
    fast, choice = best_conv_ae(model, mode="infer", batch_size=256)
    print(f"inference path: {choice.path} ({choice.reason})", flush=True)
    nets = {"fast": fast, "nn": model}
    rates: dict[str, list[float]] = {k: [] for k in nets}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first pass warms up and is not counted
            for name, net in nets.items():
                t0 = time.perf_counter()
                for i in range(0, y.shape[0], 256):
                    net(y[i : i + 256])
                rates[name].append(y.shape[0] / (time.perf_counter() - t0))
    return {**{k: statistics.median(v[1:]) for k, v in rates.items()}, "path": choice.path, "path_reason": choice.reason}


def naive_baseline(config, threads: int, epochs: int) -> dict[str, float]:
    """A straightforward PyTorch port of the tutorial loop, timed per epoch (validation included)."""
    import torch
    from torch import nn

    from aedenoise.data.fashion_mnist import load_fashion_mnist, split_validation
    from aedenoise.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    train_x, val_x = split_validation(load_fashion_mnist(data_dir=config.data.data_dir).train_x, count=config.data.val_count)
    model, loss_fn = create_model("conv_ae"), nn.MSELoss()
    opt = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    val_y = (val_x + config.noise.sigma * torch.randn_like(val_x)).clamp(0, 1)
    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(train_x.shape[0])
        for i in range(0, train_x.shape[0], config.batch_size):
            x = train_x[order[i : i + config.batch_size]]
            y = (x + config.noise.sigma * torch.randn_like(x)).clamp(0, 1)
            loss = loss_fn(model(y), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            float(loss_fn(torch.cat([model(val_y[i : i + 1000]) for i in range(0, val_y.shape[0], 1000)]), val_x))
        seconds.append(time.perf_counter() - t0)
        print(f"naive epoch: {seconds[-1]:.1f} s", flush=True)
    return {"epochs": epochs, "epoch_seconds": seconds, "median_epoch_seconds": statistics.median(seconds),
            "extrapolated_train_seconds": statistics.median(seconds) * config.epochs}


def machine_info() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from aedenoise.hardware import cpu_description

    return {"cpu": model or platform.processor(), "cpu_description": cpu_description(), "cores": cores,
            "system": platform.platform()}


if __name__ == "__main__":
    sys.exit(main())
