"""What a benchmark run produced, and its summaries: per-image rows into records and timings.

:class:`BenchmarkResult` holds the per-image rows (:class:`aedenoise.benchmark.cache.ImageResult`)
of :func:`aedenoise.benchmark.protocol.run_benchmark` and sums them up: one record per method x
dataset x noise condition (:meth:`BenchmarkResult.records`), the seconds per megapixel of
each method (:meth:`BenchmarkResult.timing`), and the ``--json`` document.

A noise condition is ``(sigma, sigma_given)``: on a clean folder ``(s, s)`` for each
synthetic level ``s`` (0-255); on a paired folder ``("real", g)`` for each level ``g`` given
to the methods (``"auto"`` or 0-255), plus ``("real", None)`` for the noisy input row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from aedenoise.benchmark.cache import ImageResult, Level
from aedenoise.benchmark.datasets import NOISY, REAL, Skipped


@dataclass
class BenchmarkResult:
    """Everything a run produced: per-image rows, skipped files and the protocol settings.

    ``sigmas``: the synthetic noise levels (0-255) of the clean folders; ``paired``: the
    names of the paired (real-noise) datasets, whose methods ran at each level of
    ``paired_sigmas`` (``"auto"`` or 0-255). ``methods`` starts with ``"noisy"`` when
    there is a paired dataset.
    """

    rows: list[ImageResult]
    skipped: list[Skipped]
    protocol: dict[str, object]
    methods: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    paired: list[str] = field(default_factory=list)
    paired_sigmas: list[Level] = field(default_factory=list)

    def conditions(self, dataset: str, *, method: str | None = None) -> list[tuple[Level, Level | None]]:
        """The ``(sigma, sigma_given)`` conditions of ``dataset`` (for ``method``: the noisy row has one)."""
        if dataset not in self.paired:
            return [(s, s) for s in self.sigmas]
        if method == NOISY:
            return [(REAL, None)]
        return [(REAL, g) for g in self.paired_sigmas]

    def records(self) -> list[dict[str, object]]:
        """One record per method x dataset x condition: means over images and seconds per megapixel."""
        out = []
        for m in self.methods:
            for d in self.datasets:
                for s, g in self.conditions(d, method=m):
                    rows = [r for r in self.rows
                            if r.method == m and r.dataset == d and r.sigma == s and r.sigma_given == g]
                    if rows:
                        out.append({"method": m, "weights": rows[0].weights, "dataset": d, "sigma": s,
                                    "sigma_given": g, **summary(rows)})
        return out

    def timing(self) -> list[dict[str, object]]:
        """Seconds per megapixel of each method over all its images (every dataset and sigma).

        One entry per method and weights: ``auto`` has one per default it used.
        ``n_images`` counts image x sigma calls. The noisy input row has none.
        """
        out = []
        for m in self.methods:
            if m == NOISY and self.paired:
                continue
            for w in dict.fromkeys(r.weights for r in self.rows if r.method == m):
                rows = [r for r in self.rows if r.method == m and r.weights == w]
                s = summary(rows)
                out.append({"method": m, "weights": w, "seconds_per_megapixel": s["seconds_per_megapixel"],
                            "seconds": s["seconds"], "megapixels": s["megapixels"], "n_images": s["n_images"],
                            "threads": self.protocol["threads"], "device": self.protocol["device"]})
        return out

    def to_json(self) -> dict[str, object]:
        return {"results": self.records(), "timing": self.timing(), "protocol": self.protocol,
                "skipped": [asdict(s) for s in self.skipped]}


def summary(rows: Sequence[ImageResult]) -> dict[str, object]:
    """Means of PSNR (dB) and SSIM over ``rows``, their seconds per megapixel and totals."""
    seconds = sum(r.seconds for r in rows)
    megapixels = sum(r.megapixels for r in rows)
    return {
        "psnr": sum(r.psnr for r in rows) / len(rows),
        "ssim": sum(r.ssim for r in rows) / len(rows),
        "seconds_per_megapixel": seconds / megapixels,
        "n_images": len(rows),
        "seconds": seconds,
        "megapixels": megapixels,
    }
