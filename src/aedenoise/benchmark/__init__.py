"""Scoring denoisers: the benchmark protocol over image folders, and seeded scoring of tensor sets.

``protocol.py`` runs methods x datasets x noise levels under the literature's protocol
(``aedenoise evaluate``); ``datasets.py`` lists and reads the folders (clean images, or
paired ``noisy/`` + ``clean/`` real-noise folders); ``methods.py`` turns ``--method`` into
denoisers (``auto`` included); ``results.py`` sums per-image rows into records;
``cache.py`` keeps per-image results so a run resumes; ``scoring.py`` scores a model on
clean tensors with seeded noise (training's validation and test sets).
May import: denoising, classical, pretrained, io, noise, models and the top-level shared modules.
"""

from aedenoise.benchmark.cache import (
    CSV_FIELDS,
    ImageResult,
    Level,
    cache_name,
    example_path,
    level_text,
    read_cache,
    rows_to_csv,
    save_example,
)
from aedenoise.benchmark.datasets import NOISY, REAL, Dataset, Sample, Skipped, is_paired_folder, load_samples, open_dataset
from aedenoise.benchmark.methods import AUTO, AutoMethod, Method, accepts_channels, method_for_dataset, method_key, resolve_method
from aedenoise.benchmark.protocol import (
    AUTO_SIGMA,
    DEFAULT_SIGMAS,
    check_paired_sigma,
    check_sigma,
    noise_seed,
    noisy_image,
    quantize_8bit,
    run_benchmark,
    timed_call,
)
from aedenoise.benchmark.results import BenchmarkResult
from aedenoise.benchmark.scoring import Evaluation, Scores, add_noise, denoise_batched, evaluate_images, score, ssim_fast

__all__ = [
    "AUTO",
    "AUTO_SIGMA",
    "AutoMethod",
    "BenchmarkResult",
    "CSV_FIELDS",
    "DEFAULT_SIGMAS",
    "Dataset",
    "Evaluation",
    "ImageResult",
    "Level",
    "Method",
    "NOISY",
    "REAL",
    "Sample",
    "Scores",
    "Skipped",
    "accepts_channels",
    "add_noise",
    "cache_name",
    "check_paired_sigma",
    "check_sigma",
    "denoise_batched",
    "evaluate_images",
    "example_path",
    "is_paired_folder",
    "level_text",
    "load_samples",
    "method_for_dataset",
    "method_key",
    "noise_seed",
    "noisy_image",
    "open_dataset",
    "quantize_8bit",
    "read_cache",
    "resolve_method",
    "rows_to_csv",
    "run_benchmark",
    "save_example",
    "score",
    "ssim_fast",
    "timed_call",
]
