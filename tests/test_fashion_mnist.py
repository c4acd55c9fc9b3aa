"""Fashion-MNIST loader: the real Debian files, search order, verification, download, splits."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from aedenoise.data import fashion_mnist as fm
from aedenoise.errors import ConfigError, DataError

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_REAL = all((REAL_DIR / f"{name}.gz").is_file() for name in fm.FILES)


# -- the real files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> fm.FashionMNIST:
    if not HAVE_REAL:
        pytest.skip(f"Fashion-MNIST not installed in {REAL_DIR} (apt-get install dataset-fashion-mnist; CI installs it)")
    return fm.load_fashion_mnist(data_dir=REAL_DIR, download=False)


def test_real_shapes_dtypes_and_values(real: fm.FashionMNIST) -> None:
    assert real.source == REAL_DIR
    assert real.train_x.shape == (60_000, 1, 28, 28) and real.test_x.shape == (10_000, 1, 28, 28)
    assert real.train_x.dtype == real.test_x.dtype == torch.float32
    assert real.train_labels.dtype == real.test_labels.dtype == torch.int64
    for x in (real.train_x, real.test_x):
        assert x.min() == 0.0 and x.max() == 1.0
        assert torch.equal((x * 255).round() / 255, x)  # exactly k/255
    # Known dataset statistics: mean pixel 0.2860, first train and test items are ankle boots.
    assert abs(real.train_x.double().mean().item() - 0.2860) < 5e-4
    assert real.train_labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert real.test_labels[:5].tolist() == [9, 2, 1, 1, 6]


def test_real_label_counts(real: fm.FashionMNIST) -> None:
    assert torch.bincount(real.train_labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(real.test_labels, minlength=10).tolist() == [1000] * 10
    assert len(fm.FashionMNIST.CLASSES) == 10


def test_real_found_without_arguments_and_stamped(real: fm.FashionMNIST) -> None:
    assert fm.locate_fashion_mnist() == REAL_DIR
    stamps = fm._read_stamps()  # the module fixture's load recorded its md5 checks
    assert {Path(k).name for k in stamps} == {f"{name}.gz" for name in fm.FILES}


# -- small fake files ---------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: magic 00 00 08 ndim, big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fake_contents(n_train: int = 20, n_test: int = 10) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        fm.TRAIN_IMAGES: idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        fm.TRAIN_LABELS: idx_bytes(np.arange(n_train) % 10),
        fm.TEST_IMAGES: idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        fm.TEST_LABELS: idx_bytes(np.arange(n_test)[::-1] % 10),
    }


FAKE = fake_contents()


def write_fake(folder: Path, *, compress: bool = True, contents: dict[str, bytes] = FAKE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Expect the fake contents; empty system folder, per-test cache, no mirrors."""
    monkeypatch.setattr(fm, "EXPECTED", {n: fm.Expected(hashlib.md5(d).hexdigest(), len(d)) for n, d in FAKE.items()})
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(fm, "MIRRORS", ())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    return tmp_path


def test_fake_roundtrip_values(fake_env: Path) -> None:
    data = fm.load_fashion_mnist(data_dir=write_fake(fake_env / "d"), download=False)
    train = np.frombuffer(FAKE[fm.TRAIN_IMAGES], np.uint8, offset=16).reshape(20, 1, 28, 28)
    assert torch.equal(data.train_x, torch.from_numpy(train.astype(np.float32)) / 255)
    assert data.train_labels.tolist() == [i % 10 for i in range(20)]
    assert data.test_x.shape == (10, 1, 28, 28) and data.test_labels.tolist() == [9 - i for i in range(10)]


def test_plain_idx_files_accepted(fake_env: Path) -> None:
    folder = write_fake(fake_env / "plain", compress=False)
    assert fm.load_fashion_mnist(data_dir=folder, download=False).source == folder


def test_search_order(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, system, cache = (write_fake(p) for p in (fake_env / "explicit", fake_env / "env", fm.SYSTEM_DIR, fm.cache_dir()))
    assert fm.cache_dir() == fake_env / "xdg" / "aedenoise" / "fashion-mnist"
    monkeypatch.setenv(fm.ENV_VAR, str(env))
    assert fm.load_fashion_mnist(data_dir=explicit, download=False).source == explicit
    assert fm.load_fashion_mnist(download=False).source == env
    monkeypatch.delenv(fm.ENV_VAR)
    assert fm.load_fashion_mnist(download=False).source == system
    (system / f"{fm.TEST_LABELS}.gz").unlink()  # incomplete system folder: fall through to the cache
    assert fm.load_fashion_mnist(download=False).source == cache
    assert fm.locate_fashion_mnist() == cache


@pytest.mark.parametrize("how", ["argument", "env"])
def test_explicit_folder_lacking_files_is_an_error(fake_env: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    write_fake(fm.SYSTEM_DIR)  # a valid fallback exists but must not be used
    folder = write_fake(fake_env / "partial")
    (folder / f"{fm.TRAIN_LABELS}.gz").unlink()
    if how == "env":
        monkeypatch.setenv(fm.ENV_VAR, str(folder))
    with pytest.raises(DataError, match=rf"{re.escape(str(folder))}.*lacks {fm.TRAIN_LABELS}"):
        fm.load_fashion_mnist(data_dir=folder if how == "argument" else None)
    with pytest.raises(DataError, match="does not exist"):
        fm.load_fashion_mnist(data_dir=fake_env / "nowhere")


def test_missing_everywhere_without_download(fake_env: Path) -> None:
    with pytest.raises(DataError) as err:
        fm.load_fashion_mnist(download=False)
    message = str(err.value)
    assert "\n" not in message
    for part in (str(fm.SYSTEM_DIR), str(fm.cache_dir()), "apt-get install dataset-fashion-mnist", "--data-dir", fm.ENV_VAR, "disabled"):
        assert part in message
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fm.locate_fashion_mnist()


def test_download_fails_everywhere_is_one_clear_error(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "MIRRORS", ((fake_env / "no-such-mirror").as_uri() + "/", "unknown-scheme://x/"))
    with pytest.raises(DataError) as err:
        fm.load_fashion_mnist()
    message = str(err.value)
    assert "download failed" in message and "no-such-mirror" in message and "unknown-scheme" in message
    assert "apt-get install dataset-fashion-mnist" in message and str(fm.SYSTEM_DIR) in message
    assert not fm.cache_dir().exists() or not any(fm.cache_dir().iterdir())


def test_download_into_cache_falls_back_across_mirrors(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = write_fake(fake_env / "mirror")
    monkeypatch.setattr(fm, "MIRRORS", ((fake_env / "dead").as_uri() + "/", mirror.as_uri() + "/"))
    data = fm.load_fashion_mnist()
    assert data.source == fm.cache_dir()
    assert sorted(p.name for p in fm.cache_dir().iterdir()) == sorted(f"{n}.gz" for n in fm.FILES)  # no temp files
    assert data.train_labels.tolist() == [i % 10 for i in range(20)]


def test_corrupt_download_never_lands_in_cache(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = write_fake(fake_env / "mirror")
    (mirror / f"{fm.TRAIN_IMAGES}.gz").write_bytes(gzip.compress(bytearray(FAKE[fm.TRAIN_IMAGES][:-1]) + b"\x07"))
    monkeypatch.setattr(fm, "MIRRORS", (mirror.as_uri() + "/",))
    with pytest.raises(DataError, match=rf"{fm.TRAIN_IMAGES}\.gz: content checksum mismatch"):
        fm.load_fashion_mnist()
    assert not (fm.cache_dir() / f"{fm.TRAIN_IMAGES}.gz").exists()
    assert not [p for p in fm.cache_dir().iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (fm.TRAIN_IMAGES, lambda d: gzip.compress(d)[:-100], "corrupt or truncated gzip"),
        (fm.TEST_IMAGES, lambda d: gzip.compress(d[:-1] + bytes([d[-1] ^ 1])), "content checksum mismatch"),
        (fm.TRAIN_LABELS, lambda d: gzip.compress(d[:-3]), "truncated or padded"),
        (fm.TEST_LABELS, lambda d: gzip.compress(b"\x00\x00\x08\x03" + d[4:]), "not an idx1 label file"),
        (fm.TRAIN_IMAGES, lambda d: gzip.compress(d[:12] + struct.pack(">I", 14) + d[16:]), "images are 28x14"),
        (fm.TEST_IMAGES, lambda d: b"", "not an idx3 image file"),
    ],
)
def test_corrupt_file_names_the_file(fake_env: Path, name: str, make, message: str) -> None:
    folder = write_fake(fake_env / "d")
    bad = folder / f"{name}.gz"
    bad.write_bytes(make(FAKE[name]))
    with pytest.raises(DataError) as err:
        fm.load_fashion_mnist(data_dir=folder, download=False)
    assert str(err.value).startswith(f"{bad}: ") and message in str(err.value)


def test_other_release_size_and_mismatched_counts(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_fake(fake_env / "d", contents=fake_contents(n_train=30))
    with pytest.raises(DataError, match="bytes of idx data, the Fashion-MNIST release has"):
        fm.load_fashion_mnist(data_dir=folder, download=False)
    # Consistent with the checksum table but 20 images vs 10 labels: caught across files.
    contents = dict(FAKE, **{fm.TRAIN_LABELS: idx_bytes(np.arange(10) % 10)})
    monkeypatch.setitem(fm.EXPECTED, fm.TRAIN_LABELS, fm.Expected(hashlib.md5(contents[fm.TRAIN_LABELS]).hexdigest(), 18))
    folder = write_fake(fake_env / "e", contents=contents)
    with pytest.raises(DataError, match="holds 20 images but its labels file 10 labels"):
        fm.load_fashion_mnist(data_dir=folder, download=False)


def test_stamp_skips_hashing_but_not_changes(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_fake(fake_env / "d")
    fm.load_fashion_mnist(data_dir=folder, download=False)
    assert len(fm._read_stamps()) == 4
    calls = []
    real_md5 = hashlib.md5
    monkeypatch.setattr(fm.hashlib, "md5", lambda *a, **k: calls.append(1) or real_md5(*a, **k))
    fm.load_fashion_mnist(data_dir=folder, download=False)
    assert calls == []  # all four stamped
    # Same size, new content and mtime: verified again, and the corruption is found.
    target = folder / f"{fm.TEST_IMAGES}.gz"
    data = bytearray(FAKE[fm.TEST_IMAGES])
    data[-1] ^= 0xFF
    target.write_bytes(gzip.compress(bytes(data)))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="content checksum mismatch"):
        fm.load_fashion_mnist(data_dir=folder, download=False)
    assert calls == [1]


def test_unwritable_cache_still_loads(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fake_env / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(fake_env / "file"))
    assert fm.load_fashion_mnist(data_dir=write_fake(fake_env / "d"), download=False).train_x.shape[0] == 20


# -- validation split ---------------------------------------------------------------------


def test_split_validation_is_a_seeded_partition() -> None:
    x = torch.arange(1000).float().reshape(1000, 1)
    train, val = fm.split_validation(x, seed=3)
    assert val.shape[0] == 100 and train.shape[0] == 900
    both = torch.cat([train, val]).flatten()
    assert torch.equal(both.sort().values, x.flatten())  # disjoint and complete
    assert torch.all(train.flatten().diff() > 0) and torch.all(val.flatten().diff() > 0)  # original order kept
    again_train, again_val = fm.split_validation(x, seed=3)
    assert torch.equal(again_train, train) and torch.equal(again_val, val)
    assert not torch.equal(fm.split_validation(x, seed=4)[1], val)
    assert fm.split_validation(x, count=250, seed=3)[1].shape[0] == 250
    assert fm.split_validation(x, fraction=0.05, seed=3)[1].shape[0] == 50
    # Labels split the same way through the indices.
    train_idx, val_idx = fm.validation_indices(1000, seed=3)
    assert torch.equal(x[val_idx], val) and torch.equal(x[train_idx], train)
    # Not merely the last 10 %: the validation set spans the whole range.
    assert val.min() < 100 and val.max() > 900


@pytest.mark.parametrize("options", [{"fraction": 0.0}, {"fraction": 1.0}, {"fraction": float("nan")}, {"count": 0}, {"count": 10}, {"count": 2, "fraction": 0.1}])
def test_split_validation_rejects_bad_sizes(options: dict) -> None:
    with pytest.raises(ConfigError):
        fm.split_validation(torch.zeros(10, 1), seed=0, **options)
