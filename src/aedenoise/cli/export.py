"""``aedenoise export MODEL --onnx FILE``: a learned model as an ONNX graph (any image size, sigma as an input)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a learned model to ONNX",
                       description="Export shipped weights or a checkpoint to ONNX: input y [B, C, H, W] in [0, 1] "
                                   "(any batch and size), input sigma [B] on the [0, 1] scale where the model reads "
                                   "one, output x_hat; the model card in the metadata. Checked against PyTorch "
                                   "before it is written. Needs pip install 'aedenoise[onnx]'.")
    p.add_argument("model", metavar="MODEL", help="shipped weights name or checkpoint file (*.safetensors)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="a fixed image size, for models whose graph depends on it (res_ae_global: 28 28)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aedenoise.denoising.selection import fixed_onnx_size, load_denoiser
    from aedenoise.errors import ConfigError
    from aedenoise.export import export_onnx
    from aedenoise.pretrained import list_pretrained, model_card

    out = Path(args.onnx)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"--onnx {out}: name the output file *.onnx")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"--onnx {out}: exists; pass --overwrite to replace it")
    source = Path(args.model)
    if source.exists() and out.resolve() == source.resolve():
        raise ConfigError(f"--onnx {out}: is the model file itself")
    model = load_denoiser(args.model, device="cpu")
    card, size = None, tuple(args.size) if args.size else None
    if args.model in list_pretrained():
        card = model_card(args.model)
        if size is None:
            size = fixed_onnx_size(args.model, model)  # the size it was trained for, where the graph depends on it
            if size is not None:
                print(f"note: {args.model} is exported for {size[0]}x{size[1]} images, its graph depends on the size")
    name = source.name if source.is_file() else args.model
    path = export_onnx(model, out, name=name, card=card, size=size)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; checked against PyTorch)")
    return 0
