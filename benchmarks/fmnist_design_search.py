"""The design search behind ``fmnist-best``: short Fashion-MNIST runs of candidate models.

Trains one candidate on the Fashion-MNIST training split (the 5,000 validation images held
out as ``aedenoise train`` holds them out) at the seed's noise (Gaussian sigma 0.2,
clipped), with fresh noise each epoch, Adam (fused; ``--muon``: :class:`aedenoise.training.muon.MuonAdam`), a per-step cosine schedule from
``--lr`` to ``--min-lr``, and prints the validation PSNR after each epoch (plain, and
with the mirror-image self-ensemble when ``--hflip`` trains on flipped images). Selection
used these validation numbers only; the test set is scored by ``aedenoise train``.

It is a loop of its own, not :func:`aedenoise.training.train`, so that candidates that are
not in the registry (``--arch``, ``--decoder-global``, ``--attention``, ``--separable``, ...) can
be tried; ``--time-steps N`` only times a candidate's training step. The tables in
docs/models-fmnist.md list the runs and their commands, e.g.::

    python benchmarks/fmnist_design_search.py --epochs 3 --loss psnr --global-hidden 512 --bf16 --tag fc512

One result line per run is appended to ``--results`` (JSON lines). Times are per process;
the search ran two 1-thread runs side by side on the 2-core VM, so compare them only
within a pair.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from aedenoise.atomic import atomic_path
from aedenoise.benchmark.scoring import add_noise
from aedenoise.config import resolve_config
from aedenoise.data.sources import epoch_generator
from aedenoise.metrics import psnr
from aedenoise.models.res_ae import ACTIVATIONS, GlobalContext, ResAE, ResBlock, activation_layer
from aedenoise.noise import noisy_batch
from aedenoise.training.loop import build_training_data, random_hflip
from aedenoise.training.losses import build_loss
from aedenoise.training.optimizers import make_optimizer

VAL_NOISE_SEED = 7777


class Attention(nn.Module):
    """Pre-norm transformer block over the positions of a ``[B, C, h, w]`` map (learned position embedding)."""

    def __init__(self, channels: int, grid: int, heads: int = 4) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, channels, grid, grid))
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, f: Tensor) -> Tensor:
        b, c, h, w = f.shape
        t = (f + self.pos).flatten(2).transpose(1, 2)
        n = self.norm1(t)
        t = t + self.attn(n, n, n, need_weights=False)[0]
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class Candidate(nn.Module):
    """The ``res_ae`` layout with free widths: ``c0`` channels at 28x28, ``c1`` at 14x14, ``c2`` at 7x7.

    Residual blocks: ``b0`` in the 28x28 decoder, ``b1`` in the 14x14 encoder and decoder,
    ``b2`` at 7x7. Options: a global-context MLP at 7x7 (``global_hidden``, ``global_layers``
    hidden layers), a second one on the 14x14 decoder input (``decoder_global``, pooled to
    7x7), ``attention`` transformer blocks at 7x7.
    """

    def __init__(self, c0: int, c1: int, c2: int, b0: int, b1: int, b2: int, *, act: str, global_hidden: int,
                 global_layers: int, decoder_global: int, attention: int) -> None:
        super().__init__()

        def block(c: int) -> nn.Module:
            return ResBlock(c, act)

        self.stem = nn.Sequential(nn.Conv2d(1, c0, 3, padding=1), activation_layer(act))
        self.down1 = nn.Sequential(nn.Conv2d(c0, c1, 3, stride=2, padding=1), activation_layer(act), *[block(c1) for _ in range(b1)])
        self.down2 = nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), activation_layer(act), *[block(c2) for _ in range(b2)])
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), activation_layer(act))
        self.dec1 = nn.Sequential(*[block(c1) for _ in range(b1)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(c1, c0, 3, stride=2, padding=1, output_padding=1), activation_layer(act))
        self.dec0 = nn.Sequential(*[block(c0) for _ in range(b0)])
        self.head = nn.Conv2d(c0, 1, 3, padding=1)
        self.context: nn.Module = nn.Identity()
        if global_hidden:
            n = c2 * 49
            layers: list[nn.Module] = [nn.Flatten(), nn.Linear(n, global_hidden), nn.ReLU(inplace=True)]
            for _ in range(global_layers - 1):
                layers += [nn.Linear(global_hidden, global_hidden), nn.ReLU(inplace=True)]
            self.context = _Added(nn.Sequential(*layers, nn.Linear(global_hidden, n)))
        self.decoder_context = GlobalContext(c1, grid=7, hidden=decoder_global) if decoder_global else nn.Identity()
        self.attention = nn.Sequential(*[Attention(c2, 7) for _ in range(attention)])

    def forward(self, y: Tensor) -> Tensor:
        f0 = self.stem(y)
        f1 = self.down1(f0)
        f2 = self.attention(self.context(self.down2(f1)))
        g1 = self.dec1(self.decoder_context(self.up2(f2) + f1))
        g0 = self.dec0(self.up1(g1) + f0)
        return y + self.head(g0)


class _Added(nn.Module):
    """``f + mlp(f)`` reshaped like ``f``; the MLP's last layer starts at zero."""

    def __init__(self, mlp: nn.Sequential) -> None:
        super().__init__()
        self.mlp = mlp
        nn.init.zeros_(mlp[-1].weight)
        nn.init.zeros_(mlp[-1].bias)

    def forward(self, f: Tensor) -> Tensor:
        return f + self.mlp(f).view_as(f)


def _flip(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.flip(dims) if dims else t


_unflip = _flip


class DenseContext(nn.Module):
    """The global context MLP with a second output: ``k`` full-resolution (28x28) maps from its hidden layer.

    ``forward(f)`` returns ``f + mlp(f)`` as :class:`GlobalContext` does and keeps the maps, which
    :meth:`inject` adds (through a 1x1 convolution to ``out_channels``, zero at the start) to 28x28 features.
    """

    def __init__(self, channels: int, hidden: int, k: int, out_channels: int, size: int = 28) -> None:
        super().__init__()
        n = channels * 49
        self.inp = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden, n)
        self.dense = nn.Linear(hidden, k * size * size)
        self.mix = nn.Conv2d(k, out_channels, 1)
        self.k, self.size = k, size
        for layer in (self.out, self.mix):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self._maps: Tensor | None = None

    def forward(self, f: Tensor) -> Tensor:
        h = self.inp(f)
        self._maps = self.dense(h).view(f.shape[0], self.k, self.size, self.size)
        return f + self.out(h).view_as(f)

    def inject(self, g: Tensor) -> Tensor:
        maps, self._maps = self._maps, None
        return g + self.mix(maps.contiguous(memory_format=torch.channels_last))


class SeparableBlock(nn.Module):
    """``x + pw2(act(pw1(dw(x))))``: a depthwise ``k x k`` convolution, then a 1x1 expansion by ``expand`` and back."""

    def __init__(self, c: int, k: int, expand: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c), nn.Conv2d(c, expand * c, 1),
                                  activation_layer(act), nn.Conv2d(expand * c, c, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def use_separable_blocks(model: nn.Module, k: int, expand: int, act: str) -> None:
    """Every :class:`ResBlock` of ``model`` replaced by a :class:`SeparableBlock` of the same width (in place)."""
    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, ResBlock):
                setattr(parent, name, SeparableBlock(m.body[0].in_channels, k, expand, act))


def add_batch_norm(model: nn.Module) -> None:
    """A BatchNorm2d after every convolution of ``model`` but the first and the last (in place)."""
    convs = [(parent, name, m) for parent in model.modules() for name, m in parent.named_children()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for parent, name, m in convs[1:-1]:
        setattr(parent, name, nn.Sequential(m, nn.BatchNorm2d(m.out_channels)))


def random_roll(x: Tensor, k: int, g: torch.Generator) -> Tensor:
    """``x`` [B, C, H, W] with each image rolled (circularly) by up to ``k`` pixels each way, rows and columns."""
    d = torch.randint(-k, k + 1, (2, x.shape[0]), generator=g, device=g.device).tolist()
    return torch.stack([xi.roll((a, b), (-2, -1)) for xi, a, b in zip(x, d[0], d[1])])


def build(args: argparse.Namespace) -> nn.Module:
    if args.arch is None:  # the registry's res_ae, with the global context of res_ae_global when asked
        model = ResAE(1, args.width, args.blocks, args.act)
        if args.global_hidden and args.global_dense:
            model.bottleneck = DenseContext(2 * args.width, args.global_hidden, args.global_dense, args.width)
            model.up1.register_forward_hook(lambda mod, inp, out: model.bottleneck.inject(out))
        elif args.global_hidden:
            model.bottleneck = GlobalContext(2 * args.width, grid=7, hidden=args.global_hidden)
        if args.decoder_global:  # a second context block on the 14x14 decoder input (pooled to --decoder-grid)
            model.decoder_context = GlobalContext(2 * args.width, grid=args.decoder_grid, hidden=args.decoder_global)
            model.dec1.register_forward_pre_hook(lambda mod, inp: (model.decoder_context(inp[0]),))
        if args.clip_flags:  # the stem also sees where y was clipped: (y == 0) and (y == 1) as two more channels
            model.stem[0] = nn.Conv2d(3, args.width, 3, padding=1)
            model.stem.register_forward_pre_hook(lambda mod, inp: (torch.cat([inp[0], (inp[0] <= 0).to(inp[0].dtype), (inp[0] >= 1).to(inp[0].dtype)], 1),))
        if args.head_kernel != 3:
            model.head = nn.Conv2d(args.width, 1, args.head_kernel, padding=args.head_kernel // 2)
            model.stem[0] = nn.Conv2d(model.stem[0].in_channels, args.width, args.head_kernel, padding=args.head_kernel // 2)
        if args.pos_bias:  # zero-initialised maps added to the stem, 14x14 encoder and 28x28 decoder-input features
            for name, module, shape in (("pos0", model.stem, (args.width, 28, 28)), ("pos1", model.down1, (2 * args.width, 14, 14)),
                                        ("pos2", model.up1, (args.width, 28, 28))):
                model.register_parameter(name, nn.Parameter(torch.zeros(1, *shape)))
                module.register_forward_hook(lambda mod, inp, out, name=name: out + getattr(model, name))
        return model
    c0, c1, c2, b0, b1, b2 = (int(v) for v in args.arch.split(","))
    return Candidate(c0, c1, c2, b0, b1, b2, act=args.act, global_hidden=args.global_hidden, global_layers=args.global_layers,
                     decoder_global=args.decoder_global, attention=args.attention)


def score_mean(paths: list[str]) -> None:
    """Print the validation PSNR of each ``--save-val`` file and of their mean (an ensemble of the runs)."""
    val_x = build_training_data(resolve_config(preset="fmnist-seed")).val_x
    estimates = [load_file(path)["x_hat"] for path in paths]
    for path, x_hat in zip(paths, estimates):
        print(f"{path}: {float(psnr(x_hat, val_x).mean()):.3f} dB")
    print(f"mean of {len(paths)}: {float(psnr(torch.stack(estimates).mean(0), val_x).mean()):.3f} dB", flush=True)


def time_steps(model: nn.Module, args: argparse.Namespace) -> None:
    """Print the median time of a training step on one random batch (3 blocks of ``--time-steps`` after 20 warm-up steps)."""
    from fmnist_step_time import median_ms, training_step  # beside this script

    opt = make_optimizer("muon" if args.muon else "adam", list(model.parameters()), lr=args.lr, weight_decay=0.0, muon_lr=args.muon or None)
    step = training_step(model, opt, build_loss(args.loss), batch_size=args.batch_size, bf16=args.bf16)
    ms = median_ms(step, warmup=20, steps=args.time_steps, repeats=3)
    params = sum(q.numel() for q in model.parameters())
    print(f"{args.tag or 'candidate'}: {params:,} parameters, {ms:.1f} ms per training step "
          f"(batch {args.batch_size}, {args.threads} thread(s), median of 3 x {args.time_steps})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=16, help="res_ae width (without --arch)")
    p.add_argument("--blocks", type=int, default=1, help="res_ae blocks per scale (without --arch)")
    p.add_argument("--arch", help="c0,c1,c2,b0,b1,b2: widths at 28/14/7 px and residual blocks there (a Candidate)")
    p.add_argument("--act", choices=ACTIVATIONS, default="relu")
    p.add_argument("--global-hidden", type=int, default=0, help="global-context MLP hidden units at 7x7 (0: none)")
    p.add_argument("--global-dense", type=int, default=0, help="the context MLP also emits this many 28x28 maps, added to the 28x28 decoder input (without --arch)")
    p.add_argument("--global-layers", type=int, default=1, help="hidden layers of that MLP (--arch only)")
    p.add_argument("--decoder-global", type=int, default=0, help="a second context MLP on the 14x14 decoder input")
    p.add_argument("--decoder-grid", type=int, default=7, help="its grid: 7 (pooled) or 14 (every position); without --arch only")
    p.add_argument("--attention", type=int, default=0, help="transformer blocks at 7x7 (--arch only)")
    p.add_argument("--loss", choices=("mse", "psnr"), default="mse")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--hflip", action="store_true", help="train on random left-right flips; also report the mirror-image ensemble")
    p.add_argument("--vflip", action="store_true", help="with --hflip: random up-down flips too; the ensemble has 4 members")
    p.add_argument("--ema", type=float, default=0.0, help="also report an exponential moving average of the weights with this decay")
    p.add_argument("--zero-init", action="store_true", help="residual blocks' last conv starts at zero")
    p.add_argument("--muon", type=float, default=0.0, help="aedenoise.training.muon.MuonAdam: Muon at this lr for the conv kernels, Adam at --lr for the rest")
    p.add_argument("--shift", type=int, default=0, help="train on random circular shifts of up to this many pixels each way; also report shift x mirror ensembles")
    p.add_argument("--separable", type=int, default=0, help="residual blocks as depthwise KxK + 1x1 expansion blocks (this K)")
    p.add_argument("--expand", type=int, default=2, help="the 1x1 expansion of --separable blocks")
    p.add_argument("--clip-flags", action="store_true", help="the stem also gets the maps y == 0 and y == 1 (where the noise was clipped)")
    p.add_argument("--head-kernel", type=int, default=3, help="kernel size of the first and last convolutions (res_ae layout)")
    p.add_argument("--norm", action="store_true", help="BatchNorm after every convolution but the first and the last")
    p.add_argument("--pos-bias", action="store_true", help="learned per-position bias maps on the 28x28 and 14x14 features (res_ae layout)")
    p.add_argument("--save-val", help="write the final validation estimates to this safetensors file")
    p.add_argument("--score-mean", nargs="+", help="only score --save-val files and their mean on the validation set, and exit")
    p.add_argument("--time-steps", type=int, default=0, help="only time training steps of the candidate (this many per block) and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--results", default="runs/fmnist-design-search.jsonl")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    if args.score_mean:
        score_mean(args.score_mean)
        return
    torch.manual_seed(args.seed)
    model = build(args)
    if args.norm:
        add_batch_norm(model)
    if args.separable:
        use_separable_blocks(model, args.separable, args.expand, args.act)
    model = model.to(memory_format=torch.channels_last)
    if args.zero_init:
        for m in model.modules():
            if isinstance(m, ResBlock):
                nn.init.zeros_(m.body[-1].weight)
                nn.init.zeros_(m.body[-1].bias)
    if args.time_steps:
        time_steps(model, args)
        return
    ema = [q.detach().clone() for q in model.parameters()] if args.ema else []
    config = resolve_config(preset="fmnist-seed")  # Fashion-MNIST, Gaussian sigma 0.2 clipped
    data = build_training_data(config)
    noise = config.noise.build()
    val_y, _ = add_noise(data.val_x, noise, seed=config.seed + VAL_NOISE_SEED)
    total = args.epochs * data.batches_per_epoch(args.batch_size, drop_last=False)
    opt = make_optimizer("muon" if args.muon else "adam", list(model.parameters()), lr=args.lr, weight_decay=0.0, muon_lr=args.muon or None)
    floor = args.min_lr / args.lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    loss_fn = build_loss(args.loss)

    @torch.inference_mode()
    def estimate(ensemble: bool, shifts: tuple[tuple[int, int], ...] = ((0, 0),)) -> Tensor:
        model.eval()
        out = []
        for i in range(0, len(val_y), 1000):
            y = val_y[i : i + 1000].contiguous(memory_format=torch.channels_last)
            dims = ([(), (-1,)] + ([(-2,), (-2, -1)] if args.vflip else [])) if ensemble else [()]
            acc = 0
            for s in shifts:
                ys = y.roll(s, (-2, -1)) if s != (0, 0) else y
                acc = acc + sum(_unflip(model(_flip(ys, d)).float(), d) for d in dims).roll((-s[0], -s[1]), (-2, -1))
            out.append(acc / (len(dims) * len(shifts)))
        model.train()
        return torch.cat(out).clamp(0, 1)

    def validate(ensemble: bool, shifts: tuple[tuple[int, int], ...] = ((0, 0),)) -> float:
        return float(psnr(estimate(ensemble, shifts), data.val_x).mean())

    history, seconds = [], 0.0
    cpu = torch.device("cpu")
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        g = epoch_generator(args.seed, epoch, cpu)
        for x in data.epoch_batches(epoch, args.batch_size, seed=args.seed, drop_last=False, device=cpu):
            if args.hflip:
                x = random_hflip(x, g)
            if args.vflip:
                x = random_hflip(x.transpose(-1, -2), g).transpose(-1, -2)  # up-down
            if args.shift:
                x = random_roll(x, args.shift, g)
            y, _ = noisy_batch(noise, x, g)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = model(y.contiguous(memory_format=torch.channels_last))
            loss = loss_fn(out.float(), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema:
                torch._foreach_lerp_(ema, [q.detach() for q in model.parameters()], 1.0 - args.ema)
        seconds += time.perf_counter() - t0
        row = {"epoch": epoch + 1, "val_psnr": round(validate(False), 3), "seconds": round(seconds, 1)}
        if args.hflip:
            row["val_psnr_flip_ensemble"] = round(validate(True), 3)
        if args.shift and (args.hflip or epoch + 1 == args.epochs):
            phases = tuple((a, b) for a in (0, 1) for b in (0, 1))
            near = tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1))
            row["val_psnr_phase4_ensemble"] = round(validate(args.hflip, phases), 3)
            if epoch + 1 == args.epochs:
                row["val_psnr_shift9_ensemble"] = round(validate(args.hflip, near), 3)
        if ema:
            live = [q.detach().clone() for q in model.parameters()]
            torch._foreach_copy_([q.detach() for q in model.parameters()], ema)
            row["val_psnr_ema"] = round(validate(False), 3)
            if args.hflip:
                row["val_psnr_ema_flip_ensemble"] = round(validate(True), 3)
            torch._foreach_copy_([q.detach() for q in model.parameters()], live)
        history.append(row)
        print(args.tag, row, flush=True)
    if args.save_val:  # the final validation estimates (mirror ensemble with --hflip), for --score-mean
        with atomic_path(args.save_val) as tmp:
            save_file({"x_hat": estimate(args.hflip).contiguous()}, str(tmp))
    result = {**vars(args), "parameters": sum(q.numel() for q in model.parameters()), "history": history}
    with open(args.results, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
