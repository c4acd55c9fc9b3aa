"""Faster CPU paths for the seed :class:`~aedenoise.models.conv_ae.ConvAE`.

Same parameters, same function: :func:`fast_conv_ae` wraps a ``ConvAE`` in a
:class:`FastConvAE`, which runs float32 batches through the compiled kernel of
:mod:`aedenoise.models.conv_ae_native` where a C++ compiler is available, and
otherwise (and in float64) through :class:`ConvAEFunction` below: the forward and
backward passes as a handful of large matrix products instead of oneDNN's
small-channel convolutions (whose backward pass dominated a training step on the
CPU). Outputs and gradients equal the ``nn`` layers' up to float rounding
(``tests/test_conv_ae_fast.py`` checks this in float64, ``tests/test_conv_ae_native.py``
the kernel in float32).

How: every activation is kept channel-major, ``[C, B, H, W]``, so the long pixel
axis is the GEMM's wide dimension. The stride-2 layers work on *parity planes* (the
four ``(row % 2, col % 2)`` sub-images of a map), where a 3x3 stride-2 (transposed)
convolution becomes a few plain matrix products whose outputs are added with a
shift of at most one pixel:

* L1, conv s2: im2col whose columns are already sorted by output parity;
* L2, conv s2 and L5, conv s1: ``Y = W_all @ X`` over all input parities at once,
  then the output is the sum of a few shifted blocks of ``Y``;
* L3, transposed conv s2: the same, producing the output's four parity planes;
* L4, transposed conv s2: one product per output parity on a 2x2 im2col.

``W_all`` are gathered from the layer weights by index tables (:func:`_plan`), and
the weight gradients scattered back through the same tables. Inputs ``y`` are
``[B, C, H, W]`` with ``H`` and ``W`` multiples of 4 (the model's contract).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from aedenoise.models.conv_ae import ConvAE
from aedenoise.models.conv_ae_native import MAX_THREADS, NativeConvAEFunction, NativeLibrary, native_applies, native_library

_pad = torch.constant_pad_nd
_relu_grad = torch.ops.aten.threshold_backward  # (g, a, 0): g where a > 0, else 0
_PARITIES = ((0, 0), (0, 1), (1, 0), (1, 1))  # parity p = 2 * (row % 2) + (col % 2)

# ConvTranspose2d(k3, s2, p1, output_padding 1): output 2m + a reads input m + d with kernel tap _K[a, d].
_K = {(0, 0): 1, (1, 0): 2, (1, 1): 0}
# A stride-2 conv's kernel tap k reads input parity _S2[k][0] at block shift _S2[k][1].
_S2 = {0: (1, -1), 1: (0, 0), 2: (1, 0)}
_L2_SHIFTS = ((0, 0), (-1, 0), (0, -1), (-1, -1))
_L3_BLOCKS = (((0, 0), 0), ((0, 0), 1), ((0, 0), 2), ((0, 0), 3), ((0, 1), 1), ((0, 1), 3), ((1, 0), 2), ((1, 0), 3), ((1, 1), 3))
_L4_SHIFTS = ((0, 1), (0, 0), (1, 0), (1, 1))  # rows of the 2x2 im2col
_L4_USES = {(0, 0): (1, 2), (0, 1): (0, 2), (1, 0): (1, 3), (1, 1): (0, 4)}  # parity -> range of _L4_SHIFTS
# L5: (shift, output parities) groups; a block of Y per (shift, parity).
_L5_GROUPS = (((0, 0), (0, 1, 2, 3)), ((-1, 0), (0, 1)), ((1, 0), (2, 3)), ((0, -1), (0, 2)), ((0, 1), (1, 3)),
              ((-1, -1), (0,)), ((-1, 1), (1,)), ((1, -1), (2,)), ((1, 1), (3,)))


def _flat(shape: tuple[int, ...], *index: int) -> int:
    out = 0
    for n, i in zip(shape, index):
        out = out * n + i
    return out


def _table(rows: list, cols: list, entry: Callable[..., int]) -> Tensor:
    return torch.tensor([[entry(r, c) for c in cols] for r in rows], dtype=torch.long)


@functools.lru_cache(maxsize=8)
def _plan(cin: int, c1: int, c2: int, c3: int, c4: int) -> dict[str, Tensor]:
    """Index tables: entry [r, c] of layer k's GEMM weight is ``w_k.flatten()[t[r, c]]`` (-1: zero)."""
    s1, s2, s3, s4, s5 = (c1, cin, 3, 3), (c2, c1, 3, 3), (c2, c3, 3, 3), (c3, c4, 3, 3), (cin, c4, 3, 3)
    taps1 = [(kh, kw, ci) for kh in range(3) for kw in range(3) for ci in range(cin)]
    l1 = _table(list(range(c1)), taps1, lambda co, t: _flat(s1, co, t[2], t[0], t[1]))

    def e2(r: tuple, k: tuple) -> int:  # rows (shift, co), columns (ci, input parity)
        (oh, ow), co = r
        ci, p = k
        kh = [t for t in range(3) if _S2[t] == (_PARITIES[p][0], oh)]
        kw = [t for t in range(3) if _S2[t] == (_PARITIES[p][1], ow)]
        return _flat(s2, co, ci, kh[0], kw[0]) if kh and kw else -1

    l2 = _table([(s, co) for s in _L2_SHIFTS for co in range(c2)], [(ci, p) for ci in range(c1) for p in range(4)], e2)

    def e3(r: tuple, ci: int) -> int:  # rows (block, co), columns ci
        ((d, e), p), co = r
        a, c = _PARITIES[p]
        return _flat(s3, ci, co, _K[(a, d)], _K[(c, e)])

    l3 = _table([(b, co) for b in _L3_BLOCKS for co in range(c3)], list(range(c2)), e3)
    cols4 = [(p, s, ci) for p in _PARITIES for s in _L4_SHIFTS[slice(*_L4_USES[p])] for ci in range(c3)]
    l4 = _table(list(range(c4)), cols4, lambda co, k: _flat(s4, k[2], co, _K[(k[0][0], k[1][0])], _K[(k[0][1], k[1][1])]))

    def e5(r: tuple, k: tuple) -> int:  # rows (shift, output parity, co), columns (input parity, ci)
        ((oh, ow), p), co = r
        q, ci = k
        kh, kw = 2 * oh + _PARITIES[q][0] - _PARITIES[p][0] + 1, 2 * ow + _PARITIES[q][1] - _PARITIES[p][1] + 1
        return _flat(s5, co, ci, kh, kw) if 0 <= kh < 3 and 0 <= kw < 3 else -1

    blocks5 = [(s, p) for s, ps in _L5_GROUPS for p in ps]
    l5 = _table([(b, co) for b in blocks5 for co in range(cin)], [(q, ci) for q in range(4) for ci in range(c4)], e5)
    return {"l1": l1, "l2": l2, "l3": l3, "l4": l4, "l5": l5}


def _gather(w: Tensor, table: Tensor) -> Tensor:
    return torch.cat((w.reshape(-1), w.new_zeros(1)))[table]  # index -1 reads the appended zero


def _scatter(g: Tensor, table: Tensor, w: Tensor) -> Tensor:
    out = g.new_zeros(w.numel() + 1)
    out.index_add_(0, table.reshape(-1).remainder(w.numel() + 1), g.reshape(-1))
    return out[:-1].view(w.shape)


def _interleave(z: Tensor) -> Tensor:
    """Parity planes ``[4, C, B, h, w]`` -> map ``[C, B, 2h, 2w]`` (complex numbers pair up columns)."""
    _, c, b, h, w = z.shape
    pairs = torch.view_as_real(torch.complex(z[0::2], z[1::2]))  # [2 (row parity), C, B, h, w, 2]
    return pairs.view(2, c, b, h, 2 * w).permute(1, 2, 3, 0, 4).reshape(c, b, 2 * h, 2 * w)


def _split(x: Tensor) -> Tensor:
    """Map ``[C, B, 2h, 2w]`` -> parity planes ``[4, C, B, h, w]``."""
    c, b, hh, ww = x.shape
    return x.reshape(c, b, hh // 2, 2, ww // 2, 2).permute(3, 5, 0, 1, 2, 4).reshape(4, c, b, hh // 2, ww // 2)


def _span(ps: tuple[int, ...]) -> slice:
    return slice(ps[0], ps[-1] + 1, ps[1] - ps[0] if len(ps) > 1 else 1)


def _shifted(o: int, n: int) -> tuple[slice, slice]:
    """``out[i] += y[i + o]`` for valid ``i``: the (out, y) slices."""
    return slice(max(0, -o), n - max(0, o)), slice(max(0, o), n - max(0, -o))


def _l1_cols(y: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> ``[9C, 4 * B * H/4 * W/4]``: rows (kh, kw, c), columns (output parity, b, i, j)."""
    b, c, h, w = y.shape
    yp = _pad(y.transpose(0, 1), (1, 0, 1, 0))
    s0, s1, s2, s3 = yp.stride()
    return yp.as_strided((3, 3, c, 2, 2, b, h // 4, w // 4), (s2, s3, s0, 2 * s2, 2 * s3, s1, 4 * s2, 4 * s3)).reshape(9 * c, -1)


def _l4_cols(a: Tensor) -> Tensor:
    c, b, h, w = a.shape
    ap = _pad(a, (0, 1, 0, 1))
    return torch.stack([ap[:, :, d : d + h, e : e + w] for d, e in _L4_SHIFTS]).view(4 * c, b * h * w)


def _l4_ranges(cin: int) -> list[tuple[int, slice, slice]]:
    """Per output parity: (index, columns of W4, rows of the im2col)."""
    out, start = [], 0
    for k, p in enumerate(_PARITIES):
        lo, hi = _L4_USES[p]
        n = (hi - lo) * cin
        out.append((k, slice(start, start + n), slice(lo * cin, hi * cin)))
        start += n
    return out


def _l4_forward(cols: Tensor, w4: Tensor, b4: Tensor, cin: int) -> Tensor:
    out = cols.new_empty(4, w4.shape[0], cols.shape[1])
    for k, wcols, rows in _l4_ranges(cin):
        torch.addmm(b4[:, None], w4[:, wcols], cols[rows], out=out[k])
    return out.relu_()


def _l4_backward(g: Tensor, cols: Tensor, w4: Tensor, cin: int) -> tuple[Tensor, Tensor]:
    """``g`` [4, cout, M] -> (gradient of the im2col [4 cin, M], gradient of ``w4``'s GEMM matrix)."""
    ranges = _l4_ranges(cin)
    k, wcols, _ = ranges[3]  # parity (1, 1) reads every im2col row: start from it
    gcols = w4[:, wcols].T @ g[k]
    for k, wcols, rows in ranges[:3]:
        gcols[rows].addmm_(w4[:, wcols].T, g[k])
    gw = torch.cat([g[k] @ cols[rows].T for k, _, rows in ranges], dim=1)
    return gcols, gw


def _l4_col2im(g: Tensor, c: int, b: int, h: int, w: int) -> Tensor:
    gp = g.new_zeros(c, b, h + 1, w + 1)
    gv = g.view(4, c, b, h, w)
    for i, (d, e) in enumerate(_L4_SHIFTS):
        gp[:, :, d : d + h, e : e + w] += gv[i]
    return gp[:, :, :h, :w]


class ConvAEFunction(torch.autograd.Function):
    """``ConvAE`` forward/backward; arguments ``(y, w1, b1, ..., w5, b5)`` in layer order."""

    @staticmethod
    def forward(ctx, y, w1, b1, w2, b2, w3, b3, w4, b4, w5, b5):  # type: ignore[override]
        bsz, cin, hh, ww = y.shape
        c1, c2, c3, c4 = w1.shape[0], w2.shape[0], w3.shape[1], w4.shape[1]
        h2, w2_, h4, w4_ = hh // 2, ww // 2, hh // 4, ww // 4
        plan = _plan(cin, c1, c2, c3, c4)
        W2, W3, W4, W5 = (_gather(w, plan[k]) for w, k in ((w2, "l2"), (w3, "l3"), (w4, "l4"), (w5, "l5")))
        cols1 = _l1_cols(y)  # L1: a1 [c1, parity, B, h4, w4]
        a1 = torch.addmm(b1[:, None], _gather(w1, plan["l1"]), cols1).relu_().view(c1 * 4, -1)
        y2 = (W2 @ a1).view(4, c2, bsz, h4, w4_)  # L2: shifted blocks -> a2 [c2, B, h4, w4]
        a2 = y2[0] + b2[:, None, None, None]
        a2[:, :, 1:, :] += y2[1, :, :, :-1, :]
        a2[:, :, :, 1:] += y2[2, :, :, :, :-1]
        a2[:, :, 1:, 1:] += y2[3, :, :, :-1, :-1]
        a2 = a2.relu_().view(c2, -1)
        y3 = (W3 @ a2).view(9, c3, bsz, h4, w4_)  # L3: shifted blocks -> a3 parity planes
        a3 = y3[0:4] + b3[:, None, None, None]
        a3[1::2, :, :, :, :-1] += y3[4:6, :, :, :, 1:]
        a3[2:4, :, :, :-1, :] += y3[6:8, :, :, 1:, :]
        a3[3, :, :, :-1, :-1] += y3[8, :, :, 1:, 1:]
        a3 = a3.relu_()
        cols4 = _l4_cols(_interleave(a3))  # L4: a4 parity planes [4, c4, B * h2 * w2]
        a4 = _l4_forward(cols4, W4, b4, c3)
        y5 = (W5 @ a4.view(4 * c4, -1)).view(16, cin, bsz, h2, w2_)  # L5: shifted blocks, parity planes
        out = y5[0:4] + b5[:, None, None, None]
        k = 4
        for (oh, ow), ps in _L5_GROUPS[1:]:
            (dh, sh), (dw, sw) = _shifted(oh, h2), _shifted(ow, w2_)
            out[_span(ps), :, :, dh, dw] += y5[k : k + len(ps), :, :, sh, sw]
            k += len(ps)
        out = out.sigmoid_()
        ctx.save_for_backward(cols1, a1, a2, a3, cols4, a4, out, W2, W3, W4, W5, w1, w2, w3, w4, w5)
        return _interleave(out).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        cols1, a1, a2, a3, cols4, a4, out, W2, W3, W4, W5, w1, w2, w3, w4, w5 = ctx.saved_tensors
        _, cin, bsz, h2, w2_ = out.shape
        h4, w4_ = h2 // 2, w2_ // 2
        c1, c2, c3, c4 = w1.shape[0], w2.shape[0], w3.shape[1], w4.shape[1]
        plan = _plan(cin, c1, c2, c3, c4)
        g = torch.ops.aten.sigmoid_backward(_split(grad.transpose(0, 1)), out)
        gb5 = g.sum((0, 2, 3, 4))
        gp = _pad(g, (1, 1, 1, 1))
        dy = torch.cat([gp[_span(ps), :, :, 1 - oh : 1 - oh + h2, 1 - ow : 1 - ow + w2_] for (oh, ow), ps in _L5_GROUPS])
        dy, a4 = dy.view(16 * cin, -1), a4.view(4 * c4, -1)
        gw5 = _scatter(dy @ a4.T, plan["l5"], w5)
        g = _relu_grad(W5.T @ dy, a4, 0).view(4, c4, -1)
        gb4 = g.sum((0, 2))
        gcols, gW4 = _l4_backward(g, cols4, W4, c3)
        gw4 = _scatter(gW4, plan["l4"], w4)
        g = _relu_grad(_split(_l4_col2im(gcols, c3, bsz, h2, w2_)), a3, 0)
        gb3 = g.sum((0, 2, 3, 4))
        gp = _pad(g, (1, 0, 1, 0))
        dy = torch.cat([gp[0:4, :, :, 1:, 1:], gp[1::2, :, :, 1:, :w4_], gp[2:4, :, :, :h4, 1:], gp[3:4, :, :, :h4, :w4_]])
        dy = dy.view(9 * c3, -1)
        gw3 = _scatter((a2 @ dy.T).T, plan["l3"], w3)
        g = _relu_grad(W3.T @ dy, a2, 0)
        gb2 = g.sum(1)
        gp = _pad(g.view(c2, bsz, h4, w4_), (0, 1, 0, 1))
        dy = torch.stack([gp[:, :, -oh : h4 - oh, -ow : w4_ - ow] for oh, ow in _L2_SHIFTS]).view(4 * c2, -1)
        gw2 = _scatter(dy @ a1.T, plan["l2"], w2)
        g = _relu_grad(W2.T @ dy, a1, 0).view(c1, -1)
        gb1 = g.sum(1)
        gw1 = _scatter((cols1 @ g.T).T, plan["l1"], w1)
        return None, gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4, gw5, gb5


class FastConvAE(nn.Module):
    """Runs a :class:`ConvAE` (sharing its parameters) on the CPU's fastest path.

    float32 batches go through the compiled kernel
    (:mod:`aedenoise.models.conv_ae_native`; ``threads`` threads, default
    ``torch.get_num_threads()``, at most 64 and one per image) where
    a C++ compiler is available, else through :class:`ConvAEFunction`; float64 through
    :class:`ConvAEFunction`. Inputs neither handles (sizes that are not multiples of
    4, other dtypes) run through the plain layers. ``native=False`` never uses the kernel.
    """

    def __init__(self, model: ConvAE, *, native: bool = True, threads: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.native = native
        self.threads = threads  # the kernel's threads (None: torch.get_num_threads())

    @property
    def path(self) -> str:
        """``"native"`` (compiled kernel) or ``"parity"`` (matrix products) for float32 batches."""
        return "native" if self._library() is not None else "parity"

    def _library(self) -> NativeLibrary | None:
        if not self.native:
            return None
        e, d = self.model.encoder, self.model.decoder
        return native_library((self.model.in_channels, e[0].out_channels, e[2].out_channels, d[0].out_channels,
                               d[2].out_channels))

    def forward(self, y: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        if y.ndim != 4 or y.shape[-2] % 4 or y.shape[-1] % 4 or y.dtype not in (torch.float32, torch.float64):
            return self.model(y, sigma)
        e, d = self.model.encoder, self.model.decoder
        params = (e[0].weight, e[0].bias, e[2].weight, e[2].bias, d[0].weight, d[0].bias,
                  d[2].weight, d[2].bias, d[4].weight, d[4].bias)
        if native_applies(y) and not y.requires_grad and all(p.dtype == torch.float32 for p in params):
            lib = self._library()
            if lib is not None:
                threads = max(1, min(self.threads or torch.get_num_threads(), MAX_THREADS, y.shape[0]))
                return NativeConvAEFunction.apply(lib, threads, y, *params)
        return ConvAEFunction.apply(y, *params)


@contextlib.contextmanager
def kernel_threads(net: nn.Module) -> Iterator[None]:
    """Within: a :class:`FastConvAE` on the compiled kernel runs ``torch.get_num_threads()``
    kernel threads, and torch itself one thread.

    Between kernel calls torch runs only small operations (noise, loss, Adam); with
    several OpenMP threads their idle threads spin and take the cores from the kernel's
    threads (a training step on two cores: 5.1 instead of 1.8-2.2 ms,
    ``benchmarks/conv_ae_step.py --keep-torch-threads``). Restored on exit.
    Other modules: no change.
    """
    if not isinstance(net, FastConvAE) or net.path != "native" or torch.get_num_threads() == 1:
        yield
        return
    threads, before = torch.get_num_threads(), net.threads
    net.threads = threads
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        net.threads = before


def fast_conv_ae(model: nn.Module, device: torch.device | str = "cpu", *, native: bool = True) -> nn.Module:
    """``FastConvAE(model)`` for a plain ``ConvAE`` used on the CPU, else ``model`` itself."""
    if type(model) is ConvAE and torch.device(device).type == "cpu":
        return FastConvAE(model, native=native)
    return model
