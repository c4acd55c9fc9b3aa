"""``aedenoise train``: train a denoiser, score it and write a report.

Example::

    aedenoise train --preset fmnist-seed --out runs/fmnist-seed

The configuration is the preset (default ``fmnist-seed`` when neither ``--preset``
nor ``--config`` is given), then the TOML file, then the flags below. The run folder
gets ``config.json``, the checkpoints, ``history.json``, ``metrics.json``, the
per-image ``test_scores.csv`` (Fashion-MNIST) and ``report.md`` with its figures.
An interrupted run continues from its last completed epoch with ``--resume``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DEFAULT_PRESET = "fmnist-seed"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a denoiser (e.g. --preset fmnist-seed) and write metrics and a report",
        description="Train a denoiser, score it on the test set and write a report. Settings: the preset "
                    f"(default {DEFAULT_PRESET} when neither --preset nor --config is given), then --config, then the flags.",
    )
    p.add_argument("--preset", metavar="NAME", help="named configuration (fmnist-seed: the tutorial setting)")
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (overrides the preset)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder for checkpoints, metrics and the report")
    p.add_argument("--epochs", metavar="N", help="number of epochs")
    p.add_argument("--batch-size", metavar="N", help="training batch size")
    p.add_argument("--lr", metavar="LR", help="learning rate")
    p.add_argument("--seed", metavar="N", help="seed of the initial weights, batch order and training noise")
    p.add_argument("--model", metavar="NAME", help="model architecture (see `aedenoise models`)")
    p.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", metavar="N", help="CPU threads (default: one per core not busy with other processes)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the Fashion-MNIST idx files")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last completed epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _number(text: str | None, flag: str, kind: type) -> Any:
    from aedenoise.errors import ConfigError

    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{flag} must be {'an integer' if kind is int else 'a number'} (got {text!r})") from None


def resolve(args: argparse.Namespace):  # -> TrainConfig
    """The configuration the arguments name: preset < config file < flags."""
    from aedenoise.config import resolve_config, validate_config

    flags: dict[str, Any] = {
        "epochs": _number(args.epochs, "--epochs", int),
        "batch_size": _number(args.batch_size, "--batch-size", int),
        "seed": _number(args.seed, "--seed", int),
        "threads": _number(args.threads, "--threads", int),
        "device": args.device,
    }
    overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if args.lr is not None:
        overrides["optim"] = {"lr": _number(args.lr, "--lr", float)}
    if args.data_dir is not None:
        overrides["data"] = {"data_dir": args.data_dir}
    preset = args.preset if args.preset or args.config else DEFAULT_PRESET
    config = resolve_config(preset=preset, config_file=args.config, overrides=overrides)
    if args.model is not None and args.model != config.model.name:  # another architecture: drop the old one's args
        data = config.to_json_dict()
        data["model"] = {"name": args.model, "args": {}}
        config = validate_config(data, source="--model")
    return config


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aedenoise.models import model_entry
    from aedenoise.training.loop import finish_run, prepare_out_dir, train

    config = resolve(args)
    model_entry(config.model.name)  # unknown names fail here, before any data is loaded
    out = Path(args.out)
    prepare_out_dir(out)
    try:
        result = train(config, out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        if (out / "last.safetensors").exists():
            print(f"aedenoise train: stopped; continue with the same command plus --resume (run folder {out})", file=sys.stderr)
        raise
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 alone scores and reports
        return 0
    metrics = finish_run(result, config)
    test = metrics.get("test")
    if test:
        print(f"test ({test['images']} images): PSNR {test['psnr']:.2f} dB (noisy {test['noisy_psnr']:.2f}), "
              f"SSIM {test['ssim']:.4f} (noisy {test['noisy_ssim']:.4f}); trained in {result.train_seconds:.1f} s")
    if metrics.get("report_note"):
        print(f"aedenoise train: note: {metrics['report_note']}", file=sys.stderr)
    print(f"Report: {out / 'report.md'}")
    return 0
