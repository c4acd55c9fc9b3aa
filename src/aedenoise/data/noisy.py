"""Noisy training data: patches of noisy images with no clean image, or of one fixed noisy copy of clean ones.

:func:`read_noisy_images` reads a user's noisy files (every page of a stack) for ``aedenoise adapt``.

What self-supervised training (:mod:`aedenoise.training.selfsupervised`) and ``aedenoise adapt``
read. Both sources are a :class:`NoisyPatchData`, whose batches are :class:`NoisyBatch`:

* :func:`noisy_patch_data`: noisy images alone (``data.kind = "noisy_folder"`` through
  :func:`noisy_folder_data`, and ``aedenoise adapt``). No whole image can be spared for
  validation when there is one image, so each image is cut into a grid of cells about
  ``2 * patch_size`` wide (``patch_size`` wide where that gives fewer than two cells in all);
  ``val_fraction`` of the cells (at least one, never all), chosen by ``seed``, are held back,
  and training crops never cross a cell border, so no training patch shares a pixel with
  the validation patches. With ``shuffle`` > 1 the patches are of the images' pixel-shuffled
  sub-images (``aedenoise adapt`` on correlated noise), a place held back in all of them.
* :func:`fixed_noise_data`: ``image_folder`` with ``fixed_noise = true``. Each image gets
  its noise drawn once, from a generator seeded by the image's index in the sorted file
  list alone (the same noisy copy for every run and seed, as a user's photographs would be),
  and patches are cut from those noisy copies. The clean image's crop rides along (same
  crop) for supervised training and validation PSNR only. Whole images are held out for
  validation as in :func:`aedenoise.data.images.patch_training_data`, with their own fixed
  noisy copies. The copies are float32 and not rounded to 8 bits; ``[noise] clip`` decides
  whether they leave [0, 1].

Noise levels (``sigma`` on [0, 1]) are per image and carried with its patches: ``"drawn"``,
the level the noise model drew (fixed noise), or ``"estimated"`` by
:func:`aedenoise.noise.estimate_sigma` on the whole noisy image, once at load time (a
whole image gives a steadier estimate than a patch, at no cost per step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor

from aedenoise.config import DataConfig
from aedenoise.data.images import (
    DATA_STREAM,
    VAL_STREAM,
    ImageStore,
    cut_patches,
    draw_crops,
    image_folder_files,
    load_split,
    resolve_train_dir,
    validation_crops,
)
from aedenoise.data.sources import epoch_generator
from aedenoise.errors import ConfigError, DataError
from aedenoise.io import page_count, read_image, read_pages, to_channels
from aedenoise.models.pixel_shuffle import shuffle_down
from aedenoise.noise import NoiseModel, estimate_sigma, noisy_batch

Levels = Literal["drawn", "estimated"]
_FIXED_NOISE_STREAM = 15_485_863
"""Image ``i``'s fixed noise comes from ``torch.Generator().manual_seed(_FIXED_NOISE_STREAM + i)``."""
MIN_PATCH = 16
"""The smallest patch side ``aedenoise adapt`` shrinks to for small images."""


@dataclass(frozen=True)
class NoisyBatch:
    """One batch: ``y`` noisy patches ``[B, C, P, P]`` float32, ``sigma`` their images' levels ``[B]`` on
    [0, 1] (or ``None``), ``x`` the clean patches of the same crops (fixed noise only, else ``None``)."""

    y: Tensor
    sigma: Tensor | None
    x: Tensor | None = None


@dataclass(frozen=True)
class NoisyPatchData:
    """Random patches of noisy images in memory, with fixed validation patches.

    ``val_y`` ``[N, C, P, P]``, ``val_sigma`` ``[N]`` (or ``None``) and ``val_x`` (clean, or
    ``None`` when there is none) are CPU float32. Each epoch serves ``patches_per_epoch``
    crops of the training regions, each flipped/rotated by one of the 8 symmetries of the
    square; the crops depend only on ``(seed, epoch)``.
    """

    channels: int
    patch_size: int
    patches_per_epoch: int
    val_y: Tensor
    val_sigma: Tensor | None
    val_x: Tensor | None
    names: tuple[str, ...]  # the images trained on
    noisy: ImageStore = field(repr=False)
    clean: ImageStore | None = field(default=None, repr=False)
    levels: Tensor | None = field(default=None, repr=False)  # [regions] float32

    def batches_per_epoch(self, batch_size: int, *, drop_last: bool) -> int:
        n = self.patches_per_epoch
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch_crops(self, epoch: int, *, seed: int) -> Tensor:
        """The epoch's crops ``[patches_per_epoch, 4]`` (region, top, left, transform)."""
        g = epoch_generator(seed + DATA_STREAM, epoch)
        return draw_crops(self.noisy, self.patches_per_epoch, self.patch_size, generator=g, augment=True)

    def draw(self, count: int, *, generator: torch.Generator) -> NoisyBatch:
        """``count`` random augmented crops drawn from ``generator`` (a CPU one)."""
        return self.cut(draw_crops(self.noisy, count, self.patch_size, generator=generator, augment=True))

    def cut(self, crops: Tensor) -> NoisyBatch:
        """The patches of ``crops`` ``[B, 4]`` (see :func:`aedenoise.data.images.draw_crops`), on the CPU."""
        p, c = self.patch_size, self.channels
        return NoisyBatch(y=cut_patches(self.noisy, crops, p, c),
                          sigma=None if self.levels is None else self.levels[crops[:, 0]],
                          x=None if self.clean is None else cut_patches(self.clean, crops, p, c))

    def epoch_batches(
        self, epoch: int, batch_size: int, *, seed: int, drop_last: bool, device: torch.device | str
    ) -> Iterator[NoisyBatch]:
        """This epoch's batches, on ``device`` (cut on the CPU)."""
        crops = self.epoch_crops(epoch, seed=seed)
        for i in range(self.batches_per_epoch(batch_size, drop_last=drop_last)):
            b = self.cut(crops[i * batch_size : (i + 1) * batch_size])
            yield NoisyBatch(*(None if t is None else t.to(device) for t in (b.y, b.sigma, b.x)))


def cell_grid(height: int, width: int, patch_size: int, *, fine: bool = False) -> tuple[int, int]:
    """Rows and columns of cells an image is cut into: cells at least ``2 * patch_size`` wide
    (``patch_size`` with ``fine``), as many as fit; ``(0, 0)`` for an image smaller than a patch."""
    if min(height, width) < patch_size:
        return 0, 0
    side = patch_size if fine else 2 * patch_size
    return max(1, height // side), max(1, width // side)


def image_cells(sizes: Sequence[tuple[int, int]], patch_size: int) -> list[tuple[int, int]]:
    """The grid of every image (:func:`cell_grid`): coarse cells, or fine ones where coarse give fewer than two."""
    coarse = [cell_grid(h, w, patch_size) for h, w in sizes]
    if sum(r * c for r, c in coarse) >= 2:
        return coarse
    return [cell_grid(h, w, patch_size, fine=True) for h, w in sizes]


def fit_patch_size(images: Sequence[tuple[str, Tensor]], requested: int, *, multiple: int, minimum: int = MIN_PATCH,
                   shuffle: int = 1) -> int:
    """The largest patch side ``<= requested``, a multiple of ``multiple`` and ``>= minimum``, at which the
    images (their ``shuffle x shuffle`` pixel-shuffled sub-images) hold at least two cells (:func:`image_cells`).
    Raises :class:`DataError` naming the largest image, :class:`ConfigError` for ``requested`` below the minimum."""
    minimum = -(-max(minimum, multiple) // multiple) * multiple
    if requested < minimum:
        raise ConfigError(f"patch size {requested} is below the smallest this model and objective take, {minimum}")
    sizes = [(int(im.shape[-2]) // shuffle, int(im.shape[-1]) // shuffle) for _, im in images]
    p = requested // multiple * multiple
    while p >= minimum:
        if sum(r * c for r, c in image_cells(sizes, p)) >= 2:
            return p
        p -= multiple
    name, im = max(images, key=lambda ni: min(ni[1].shape[-2:]))
    sub = f" of its {shuffle}x{shuffle} pixel-shuffled sub-images" if shuffle > 1 else ""
    raise DataError(f"{name}: {im.shape[-2]}x{im.shape[-1]} pixels is too small: adapting needs room for two "
                    f"{minimum}x{minimum} patches{sub} (one to train on, one to validate), e.g. "
                    f"{2 * minimum * shuffle}x{minimum * shuffle} pixels")


def _cells(image: Tensor, rows: int, cols: int) -> list[Tensor]:
    """``image`` [C, H, W] cut into ``rows x cols`` near-equal cells (contiguous copies)."""
    h, w = image.shape[-2:]
    r_edges = [round(i * h / rows) for i in range(rows + 1)]
    c_edges = [round(j * w / cols) for j in range(cols + 1)]
    return [image[:, r_edges[i]:r_edges[i + 1], c_edges[j]:c_edges[j + 1]].contiguous()
            for i in range(rows) for j in range(cols)]


def image_level(name: str, y: Tensor) -> float:
    """The estimated Gaussian noise level of one noisy image ``y`` [C, H, W] on [0, 1] (of a batch
    ``[N, C, H, W]`` of its sub-images: their median); errors name ``name``."""
    try:
        return float(estimate_sigma(y if y.ndim == 4 else y[None]).median())
    except DataError as err:
        raise DataError(f"{name}: {err}") from None


def noisy_patch_data(
    images: Sequence[tuple[str, Tensor]],
    *,
    patch_size: int,
    patches_per_epoch: int,
    val_fraction: float,
    val_count: int,
    seed: int,
    estimate_levels: bool,
    shuffle: int = 1,
) -> NoisyPatchData:
    """Patch data of noisy ``images`` (``(name, float32 [C, H, W])``, one channel count) split by cells.

    Images smaller than ``patch_size`` are left out. ``estimate_levels``: estimate each
    image's noise level once (else ``sigma`` is ``None``). ``shuffle`` > 1: the patches are
    cut from each image's ``shuffle**2`` pixel-shuffled sub-images
    (:func:`aedenoise.models.pixel_shuffle.shuffle_down`; ``patch_size`` is theirs), the
    cells at one place of all sub-images held back together (no training patch shows the
    place of a validation patch), the level the median over the sub-images. Raises
    :class:`DataError` when fewer than two cells fit.
    """
    p, s = patch_size, shuffle
    usable = [(n, im) for n, im in images if min(im.shape[-2:]) // s >= p]
    grids = image_cells([(im.shape[-2] // s, im.shape[-1] // s) for _, im in usable], p)
    if sum(r * c for r, c in grids) < 2:
        raise DataError(f"{', '.join(n for n, _ in images)}: too small for two {p}x{p} patches (one to train on, "
                        f"one to validate){f' of the {s}x{s} pixel-shuffled sub-images' if s > 1 else ''}; "
                        f"add images or lower the patch size")
    places: list[list[tuple[Tensor, float]]] = []  # each: the cells at one place of an image's sub-images
    for (name, im), (rows, cols) in zip(usable, grids):
        subs = shuffle_down(im[None], s)
        level = image_level(name, subs) if estimate_levels else 0.0
        cells = [_cells(sub, rows, cols) for sub in subs]
        places += [[(sub_cells[k], level) for sub_cells in cells] for k in range(rows * cols)]
    n_val = min(len(places) - 1, max(1, round(val_fraction * len(places))))
    order = torch.randperm(len(places), generator=torch.Generator().manual_seed(seed + VAL_STREAM)).tolist()
    held = set(order[:n_val])
    train = [r for i in range(len(places)) if i not in held for r in places[i]]
    val = [r for i in sorted(held) for r in places[i]]
    val_store = ImageStore.build([cell for cell, _ in val])
    crops = validation_crops(val_store, val_count, p, seed=seed)
    val_levels = torch.tensor([lv for _, lv in val], dtype=torch.float32)
    channels = int(usable[0][1].shape[0])
    return NoisyPatchData(
        channels=channels, patch_size=p, patches_per_epoch=patches_per_epoch,
        val_y=cut_patches(val_store, crops, p, channels),
        val_sigma=val_levels[crops[:, 0]] if estimate_levels else None, val_x=None,
        names=tuple(n for n, _ in usable), noisy=ImageStore.build([cell for cell, _ in train]),
        levels=torch.tensor([lv for _, lv in train], dtype=torch.float32) if estimate_levels else None,
    )


def noisy_folder_data(data: DataConfig, *, seed: int, estimate_levels: bool, val_fraction: float = 0.1) -> NoisyPatchData:
    """:func:`noisy_patch_data` of every image in ``data.train_dirs`` (``kind = "noisy_folder"``), converted
    to ``data.channels``; ``val_count`` validation patches from ``val_fraction`` of the cells."""
    files: list[Path] = [f for d in data.train_dirs for f in image_folder_files(resolve_train_dir(d))]
    images = [(str(f), to_channels(read_image(f).data, data.channels)) for f in files]
    return noisy_patch_data(images, patch_size=data.patch_size, patches_per_epoch=data.patches_per_epoch,
                            val_fraction=val_fraction, val_count=data.val_count, seed=seed, estimate_levels=estimate_levels)


def fixed_noisy_copy(x: Tensor, noise: NoiseModel, index: int) -> tuple[Tensor, float | None]:
    """Image ``index``'s one noisy copy of clean ``x`` [C, H, W] in [0, 1] and the level drawn (or ``None``)."""
    y, sigma = noisy_batch(noise, x[None], torch.Generator().manual_seed(_FIXED_NOISE_STREAM + index))
    return y[0], None if sigma is None else float(sigma[0])


def fixed_noise_data(data: DataConfig, noise: NoiseModel, *, seed: int, levels: Levels | None) -> NoisyPatchData:
    """Patches of one fixed noisy copy of each image of ``data`` (``image_folder``, ``fixed_noise``).

    ``levels``: ``"drawn"`` gives each patch its image's drawn level (``None`` for noise
    models without one), ``"estimated"`` the level estimated on the noisy image, ``None`` none.
    """
    train, held = load_split(data, seed=seed)

    def noisy(part: list[tuple[int, Path, Tensor]]) -> tuple[list[Tensor], Tensor | None]:
        copies, drawn = zip(*(fixed_noisy_copy(im.float().div(255), noise, i) for i, _, im in part))
        if levels == "estimated":
            return list(copies), torch.tensor([image_level(str(f), y) for (_, f, _), y in zip(part, copies)])
        if levels == "drawn" and None not in drawn:
            return list(copies), torch.tensor(drawn, dtype=torch.float32)
        return list(copies), None

    train_y, train_levels = noisy(train)
    val_y, val_levels = noisy(held)
    val_noisy, val_clean = ImageStore.build(val_y), ImageStore.build([im for _, _, im in held])
    p, c = data.patch_size, data.channels
    crops = validation_crops(val_clean, data.val_count, p, seed=seed)
    return NoisyPatchData(
        channels=c, patch_size=p, patches_per_epoch=data.patches_per_epoch,
        val_y=cut_patches(val_noisy, crops, p, c), val_sigma=None if val_levels is None else val_levels[crops[:, 0]],
        val_x=cut_patches(val_clean, crops, p, c), names=tuple(str(f) for _, f, _ in train),
        noisy=ImageStore.build(train_y), clean=ImageStore.build([im for _, _, im in train]), levels=train_levels,
    )


def read_noisy_images(files: Sequence[tuple[Path, Path]], *, log: Callable[[str], None]) -> list[tuple[str, Tensor]]:
    """``(name, float32 [C, H, W] in [0, 1])`` of each readable image of ``files`` (from
    :func:`aedenoise.denoising.files.expand_inputs`; alpha is dropped). Every page of a
    multi-page TIFF is an image of its own, named ``stack.tif (page 3)`` (from 1). An
    unreadable file (or page: the rest of that file) is reported through ``log`` and skipped;
    :class:`DataError` when nothing is left."""
    images: list[tuple[str, Tensor]] = []
    for path, rel in files:
        try:
            stack = page_count(path) > 1
            for page in read_pages(path):
                images.append((f"{rel} (page {page.page + 1})" if stack else str(rel), page.data))
        except DataError as err:
            log(f"skipped {err}" if str(path) in str(err) else f"skipped {path}: {err}")
    if not images:
        raise DataError(f"none of the {len(files)} input file(s) could be read")
    return images
