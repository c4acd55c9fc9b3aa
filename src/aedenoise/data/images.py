"""Training data from image folders: random patches with dihedral augmentation.

:func:`patch_training_data` loads every image of ``data.train_dirs`` into memory
(uint8, converted to ``data.channels``), holds a few whole images out for
validation, and serves each epoch ``patches_per_epoch`` random
``patch_size x patch_size`` crops of the others, each flipped/rotated by one of
the 8 symmetries of the square. Two options widen what the model sees beyond the
training photographs: ``data.scales`` adds resized copies of every training image
(finer structure per pixel), and ``data.color_jitter`` gives each RGB patch a random
channel order and saturation (more saturated and other-hued colours than BSD's). The crops are cut by one vectorised gather on
the training device (the image store is copied there once), so the data never
bottleneck a GPU. Batches are float32 ``[B, C, P, P]`` in ``[0, 1]``.

Where folders are found (one rule): an absolute path, or a relative path with a
directory part (``./mine``, ``data/Train400``), is used as written (relative to the
current directory); a plain name (``Train400``) is looked up under
``$AEDENOISE_DATA``, default ``../shared/data`` (relative to the current directory).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from aedenoise.config import DataConfig
from aedenoise.data.sources import epoch_generator
from aedenoise.errors import DataError
from aedenoise.io import IMAGE_SUFFIXES, is_image_path, read_image, to_channels

DATA_ENV = "AEDENOISE_DATA"
DEFAULT_DATA_ROOT = "../shared/data"
DATA_STREAM = 104_729  # offsets the data seed from the noise seed, so their random streams differ
VAL_STREAM = 7_368_787
_COLOR_STREAM = 2_750_159
SATURATION_RANGE = (0.5, 1.6)
"""``data.color_jitter``: each patch's saturation is scaled by a factor drawn uniformly from this range."""


def resolve_train_dir(name: str | os.PathLike[str]) -> Path:
    """The folder a ``data.train_dirs`` entry names (see the module docstring for the rule)."""
    text = os.fspath(name)
    p = Path(text)
    if p.is_absolute() or len(p.parts) > 1 or text.startswith("."):
        return p
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT) / p


def image_folder_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), sorted by name.

    Raises :class:`DataError` if ``folder`` is missing, not a folder, or holds no images.
    """
    root = Path(folder)
    if not root.is_dir():
        hint = f" (plain names are looked up under ${DATA_ENV}; write ./{root.name} for a folder here)" \
            if root.parent == Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT) else ""
        raise DataError(f"{root}: no such image folder{hint}")
    files = sorted(p for p in root.iterdir() if p.is_file() and is_image_path(p))
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    return files


@dataclass(frozen=True)
class ImageStore:
    """Images of one set, flattened into one buffer (on one device): uint8 (clean 8-bit images) or float32 (noisy ones)."""

    pixels: Tensor  # [sum of C*H*W] uint8 or float32
    offsets: Tensor  # [N] int64, start of each image in ``pixels``
    heights: Tensor  # [N] int64
    widths: Tensor  # [N] int64

    @staticmethod
    def build(images: list[Tensor]) -> "ImageStore":
        sizes = torch.tensor([im.numel() for im in images], dtype=torch.int64)
        return ImageStore(
            pixels=torch.cat([im.reshape(-1) for im in images]),
            offsets=torch.cumsum(sizes, 0) - sizes,
            heights=torch.tensor([im.shape[1] for im in images], dtype=torch.int64),
            widths=torch.tensor([im.shape[2] for im in images], dtype=torch.int64),
        )

    def to(self, device: torch.device | str) -> "ImageStore":
        return ImageStore(*(t.to(device) for t in (self.pixels, self.offsets, self.heights, self.widths)))


def draw_crops(store: ImageStore, count: int, patch_size: int, *, generator: torch.Generator, augment: bool) -> Tensor:
    """``count`` random crops ``[count, 4]`` int64: (image, top, left, transform 0-7).

    Images are chosen with probability proportional to their number of crop
    positions (uniform over pixels); ``transform`` is 0 unless ``augment``.
    """
    h, w = store.heights.cpu(), store.widths.cpu()
    positions = ((h - patch_size + 1) * (w - patch_size + 1)).double()
    image = torch.multinomial(positions, count, replacement=True, generator=generator)
    top = (torch.rand(count, generator=generator, dtype=torch.float64) * (h[image] - patch_size + 1)).long()
    left = (torch.rand(count, generator=generator, dtype=torch.float64) * (w[image] - patch_size + 1)).long()
    transform = torch.randint(0, 8, (count,), generator=generator) if augment else torch.zeros(count, dtype=torch.int64)
    return torch.stack([image, top, left, transform], dim=1)


def cut_patches(store: ImageStore, crops: Tensor, patch_size: int, channels: int) -> Tensor:
    """Gather ``crops`` ([B, 4], see :func:`draw_crops`) from ``store``: float32 ``[B, C, P, P]``.

    A uint8 store gives values in [0, 1] (divided by 255); a float32 store its values as
    stored (noisy images may leave [0, 1]).

    Transform bits: 1 flips rows, 2 flips columns, 4 transposes (applied first); the
    8 combinations are the 8 symmetries of the square. Runs on ``store``'s device.
    """
    dev = store.pixels.device
    crops = crops.to(dev)
    image, top, left, t = (crops[:, i].reshape(-1, 1, 1) for i in range(4))
    p = patch_size
    r = torch.arange(p, device=dev).reshape(1, p, 1).expand(1, p, p)
    c = torch.arange(p, device=dev).reshape(1, 1, p).expand(1, p, p)
    transpose = (t & 4).bool()
    rr, cc = torch.where(transpose, c, r), torch.where(transpose, r, c)
    rr = torch.where((t & 1).bool(), p - 1 - rr, rr)
    cc = torch.where((t & 2).bool(), p - 1 - cc, cc)
    width = store.widths[image]  # [B, 1, 1]
    spatial = store.offsets[image] + (top + rr) * width + (left + cc)  # [B, P, P]
    plane = (store.heights[image] * width).unsqueeze(1)  # [B, 1, 1, 1]
    index = spatial.unsqueeze(1) + torch.arange(channels, device=dev).reshape(1, -1, 1, 1) * plane
    patches = torch.take(store.pixels, index)
    return patches.float().div_(255) if patches.dtype == torch.uint8 else patches


@dataclass(frozen=True)
class PatchData:
    """Random patches of in-memory images (a :class:`~aedenoise.data.sources.TrainingData`).

    ``val_x``: fixed validation patches ``[N, C, P, P]`` (CPU, float32 in [0, 1]) cut
    from ``val_files``, images never used for training. Each epoch serves
    ``patches_per_epoch`` crops of ``train_files``; the crops depend only on
    ``(seed, epoch)``, not on the batch size or the device.
    """

    channels: int
    patch_size: int
    patches_per_epoch: int
    val_x: Tensor
    train_files: tuple[Path, ...]
    val_files: tuple[Path, ...]
    store: ImageStore = field(repr=False)
    color_jitter: bool = False
    _on_device: dict[str, ImageStore] = field(default_factory=dict, repr=False, compare=False)

    def batches_per_epoch(self, batch_size: int, *, drop_last: bool) -> int:
        n = self.patches_per_epoch
        return n // batch_size if drop_last else -(-n // batch_size)

    def epoch_crops(self, epoch: int, *, seed: int) -> Tensor:
        """The epoch's crops ``[patches_per_epoch, 4]`` (image, top, left, transform)."""
        g = epoch_generator(seed + DATA_STREAM, epoch)
        return draw_crops(self.store, self.patches_per_epoch, self.patch_size, generator=g, augment=True)

    def epoch_batches(
        self, epoch: int, batch_size: int, *, seed: int, drop_last: bool, device: torch.device | str
    ) -> Iterator[Tensor]:
        """Batches ``[B, C, P, P]`` of this epoch's patches, on ``device``."""
        store = self._store_on(torch.device(device))
        crops = self.epoch_crops(epoch, seed=seed).to(store.pixels.device)  # one copy, no per-step sync
        colors = epoch_generator(seed + _COLOR_STREAM, epoch) if self.color_jitter else None
        for i in range(self.batches_per_epoch(batch_size, drop_last=drop_last)):
            x = cut_patches(store, crops[i * batch_size : (i + 1) * batch_size], self.patch_size, self.channels)
            yield x if colors is None else jitter_colors(x, generator=colors)

    def with_patches_per_epoch(self, n: int) -> "PatchData":
        """The same images and validation set with another epoch length (shares memory)."""
        if n < 1:
            raise ValueError(f"patches_per_epoch must be >= 1 (got {n})")
        return replace(self, patches_per_epoch=n, _on_device=self._on_device)

    def _store_on(self, device: torch.device) -> ImageStore:
        if device.type == "cpu":
            return self.store
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = self.store.to(device)
        return self._on_device[key]


def jitter_colors(x: Tensor, *, generator: torch.Generator) -> Tensor:
    """RGB patches ``x`` [B, 3, P, P] in [0, 1] with a random channel order and saturation per patch.

    The saturation factor ``s`` ~ U(:data:`SATURATION_RANGE`) scales each pixel's distance
    from its own gray level (the channel mean): ``gray + s * (x - gray)``, clamped to [0, 1].
    Draws come from ``generator`` (a CPU one), so the result does not depend on the device.
    """
    b = x.shape[0]
    order = torch.argsort(torch.rand(b, 3, generator=generator), dim=1).to(x.device)
    low, high = SATURATION_RANGE
    s = (low + (high - low) * torch.rand(b, generator=generator)).to(x.device, x.dtype).reshape(b, 1, 1, 1)
    x = torch.gather(x, 1, order.reshape(b, 3, 1, 1).expand_as(x))
    gray = x.mean(1, keepdim=True)
    return (gray + s * (x - gray)).clamp_(0, 1)


def resized(images: list[Tensor], factor: float) -> list[Tensor]:
    """uint8 images ``[C, H, W]`` resized by ``factor`` (antialiased bilinear), rounded back to uint8."""
    if factor == 1:
        return images
    out = []
    for im in images:
        size = (max(1, round(im.shape[1] * factor)), max(1, round(im.shape[2] * factor)))
        z = torch.nn.functional.interpolate(im[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        out.append(z[0].round_().clamp_(0, 255).to(torch.uint8))
    return out


def load_images(files: list[Path], channels: int, *, workers: int | None = None) -> list[Tensor]:
    """Read ``files`` as uint8 tensors ``[channels, H, W]`` (rounded from [0, 1]), in order."""
    def load(path: Path) -> Tensor:
        x = to_channels(read_image(path).data, channels)
        return x.mul(255).round_().to(torch.uint8)

    workers = workers or min(8, os.cpu_count() or 1)
    if workers == 1 or len(files) < 8:
        return [load(f) for f in files]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # decoders release the GIL
        return list(pool.map(load, files))


def held_out_count(n_images: int) -> int:
    """How many whole images are held out for validation: 2% of them, 1 to 16."""
    return min(16, max(1, n_images // 50))


def load_split(data: DataConfig, *, seed: int) -> tuple[list[tuple[int, Path, Tensor]], list[tuple[int, Path, Tensor]]]:
    """The images of ``data.train_dirs`` as ``(index, file, uint8 [C, H, W])``, split into (train, held out).

    ``index`` is the file's position in the sorted list of every file read. Images smaller
    than ``patch_size`` are skipped; :func:`held_out_count` whole images, chosen by ``seed``,
    are held out. Raises :class:`DataError` for a missing or empty folder, or fewer than 2
    usable images.
    """
    p = data.patch_size
    files = [f for d in data.train_dirs for f in image_folder_files(resolve_train_dir(d))]
    images = load_images(files, data.channels)
    usable = [(i, f, im) for i, (f, im) in enumerate(zip(files, images)) if im.shape[1] >= p and im.shape[2] >= p]
    if len(usable) < 2:
        raise DataError(f"{', '.join(map(str, data.train_dirs))}: {len(usable)} image(s) of at least {p}x{p} pixels; "
                        f"need 2 or more (one is held out for validation): add images or lower data.patch_size")
    order = torch.randperm(len(usable), generator=torch.Generator().manual_seed(seed + VAL_STREAM)).tolist()
    val_set = set(order[:held_out_count(len(usable))])
    return [usable[i] for i in range(len(usable)) if i not in val_set], [usable[i] for i in sorted(val_set)]


def validation_crops(store: ImageStore, count: int, patch_size: int, *, seed: int) -> Tensor:
    """The fixed validation crops ``[count, 4]`` of the held-out images (no augmentation), from ``seed``."""
    return draw_crops(store, count, patch_size, generator=torch.Generator().manual_seed(seed + VAL_STREAM), augment=False)


def patch_training_data(data: DataConfig, *, seed: int) -> PatchData:
    """Patch data for ``data`` (kind ``image_folder``); the held-out images depend on ``seed``.

    Images smaller than ``patch_size`` in height or width are skipped. Raises
    :class:`DataError` for a missing or empty folder, or fewer than 2 usable images.
    """
    p = data.patch_size
    train, held = load_split(data, seed=seed)
    val_store = ImageStore.build([im for _, _, im in held])
    val_crops = validation_crops(val_store, data.val_count, p, seed=seed)
    train_images = [im for factor in dict.fromkeys(data.scales) for im in resized([im for _, _, im in train], factor)]
    return PatchData(
        channels=data.channels,
        patch_size=p,
        patches_per_epoch=data.patches_per_epoch,
        val_x=cut_patches(val_store, val_crops, p, data.channels),
        train_files=tuple(f for _, f, _ in train),
        val_files=tuple(f for _, f, _ in held),
        store=ImageStore.build([im for im in train_images if im.shape[1] >= p and im.shape[2] >= p]),
        color_jitter=data.color_jitter,
    )
