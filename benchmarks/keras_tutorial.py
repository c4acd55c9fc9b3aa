"""The TensorFlow/Keras reference of the seed run, for side-by-side timing on this machine.

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tfvenv/bin/python benchmarks/keras_tutorial.py --json runs/bench-keras.json

The textbook denoising autoencoder as Keras users write it: the same five layers as
``conv_ae`` ("same" padding, ReLU, sigmoid output), Gaussian noise with factor 0.2 added
once to the 60,000 training images and clipped to [0, 1], Adam (Keras defaults, lr 1e-3),
MSE, ``fit(..., epochs=10, batch_size=32, shuffle=True, validation_data=test)``. It
reports the wall time of ``fit``, the inference rate of ``predict`` at batch 256 (median of
``--infer-repeats`` passes over the 10,000 test images after a warm-up) and the mean
per-image PSNR on the test set (numpy, data range 1) of the output and of the noisy
input. Standalone on purpose: it needs only TensorFlow and numpy (not aedenoise or
PyTorch), and reads the original idx files from ``--data-dir`` (default: the Debian
package folder).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}


def read_idx_images(path: Path) -> np.ndarray:
    """``[N, 28, 28, 1]`` float32 in [0, 1] from an idx3 ``.gz`` file."""
    raw = gzip.decompress(path.read_bytes())
    if int.from_bytes(raw[:4], "big") != 2051:
        raise SystemExit(f"{path}: not an idx3 image file")
    n, h, w = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    return (np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w, 1).astype(np.float32) / 255.0)


def psnr_per_image(x_hat: np.ndarray, x: np.ndarray) -> np.ndarray:
    mse = ((x_hat.astype(np.float64) - x) ** 2).reshape(len(x), -1).mean(axis=1)
    return 10 * np.log10(1.0 / mse)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, metavar="FILE")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--infer-repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import tensorflow as tf
    from tensorflow.keras import Sequential, layers, losses

    tf.keras.utils.set_random_seed(args.seed)
    data = Path(args.data_dir)
    x_train, x_test = read_idx_images(data / FILES["train"]), read_idx_images(data / FILES["test"])
    noisy = lambda x: tf.clip_by_value(x + 0.2 * tf.random.normal(shape=x.shape), 0.0, 1.0).numpy()  # noqa: E731
    y_train, y_test = noisy(x_train), noisy(x_test)

    model = Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss=losses.MeanSquaredError())
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    history = model.fit(y_train, x_train, epochs=args.epochs, batch_size=32, shuffle=True,
                        validation_data=(y_test, x_test), verbose=2)
    train_seconds = time.perf_counter() - t0

    model.predict(y_test, batch_size=256, verbose=0)  # warm-up (tracing)
    rates = []
    for _ in range(args.infer_repeats):
        t0 = time.perf_counter()
        x_hat = model.predict(y_test, batch_size=256, verbose=0)
        rates.append(len(y_test) / (time.perf_counter() - t0))
    out = {
        "train_seconds": train_seconds, "infer_images_per_s": statistics.median(rates), "infer_rates": rates,
        "psnr": float(psnr_per_image(x_hat, x_test).mean()), "noisy_psnr": float(psnr_per_image(y_test, x_test).mean()),
        "val_loss": [float(v) for v in history.history["val_loss"]], "epochs": args.epochs, "batch_size": 32,
        "parameters": int(model.count_params()), "tensorflow": tf.__version__, "keras": tf.keras.__version__,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "env": {k: os.environ.get(k) for k in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("train_seconds", "infer_images_per_s", "psnr", "noisy_psnr", "parameters")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
