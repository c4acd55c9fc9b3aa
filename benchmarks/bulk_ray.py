"""The local file driver against the Ray Data engine, side by side, on the same files.

    python benchmarks/bulk_ray.py --json runs/bench-bulk.json

Denoises the CBSD68 images (``$AEDENOISE_DATA`` or ``../shared/data``; ``--images`` of them)
with the shipped default at sigma auto, into fresh folders: the local driver with 2 threads,
Ray with 2 actors x 1 thread and with 1 actor x 2 threads (a local Ray started once, outside
the clock), alternating for ``--rounds`` rounds; the median round. Then the same with
``--model gaussian`` on 16x16 images, where the denoising itself is negligible: Ray's
overhead per file. Reports images/s, CPU-seconds per megapixel (wall time x cores / MP) and
the largest actor's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if any(os.environ.get(k) != v for k, v in _MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC})

    import ray
    import torch

    from aedenoise.bulk import run_jobs_on_ray
    from aedenoise.denoising import expand_inputs, load_denoiser, plan_jobs, run_jobs
    from aedenoise.hardware import cpu_description
    from aedenoise.io import read_image, write_image

    root = Path(os.environ.get("AEDENOISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    photos = work / "photos"
    photos.mkdir()
    for path in sorted((root / "CBSD68").iterdir())[: args.images]:
        shutil.copy(path, photos / path.name)
    tiny = work / "tiny"
    tiny.mkdir()
    for i in range(args.images * 4):
        write_image(tiny / f"t{i:03d}.png", torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(i)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    cores = 2
    results = []
    for label, folder, model, sigma in (("CBSD68, shipped default, sigma auto", photos, None, "auto"),
                                        ("16x16 images, gaussian filter (overhead)", tiny, "gaussian", 25 / 255)):
        files, _ = expand_inputs([folder])
        mp = sum(read_image(f).data.shape[-1] * read_image(f).data.shape[-2] for f, _ in files) / 1e6
        times: dict[str, list[float]] = {"local, 2 threads": [], "ray, 2 actors x 1 thread": [],
                                         "ray, 1 actor x 2 threads": []}
        stats: dict[str, dict[str, float]] = {k: {} for k in times}
        for r in range(args.rounds):
            for name in times:
                out = work / f"out-{r}-{len(results)}-{name.split(',')[0]}-{name[-9:].strip()}"
                jobs = plan_jobs(files, out)
                t0 = time.perf_counter()
                if name.startswith("local"):
                    torch.set_num_threads(2)
                    den = None if model is None else load_denoiser(model)
                    summary = run_jobs(jobs, model=den, sigma=sigma)
                else:
                    actors, threads = (2, 1) if "2 actors" in name else (1, 2)
                    summary = run_jobs_on_ray(jobs, model=model, sigma=sigma, actors=actors, threads_per_actor=threads,
                                              stats=stats[name])
                times[name].append(time.perf_counter() - t0)
                assert not summary.failed, summary.failed
                shutil.rmtree(out)
        for name, t in times.items():
            s = statistics.median(t)
            row = {"workload": label, "engine": name, "images": len(files), "megapixels": mp, "seconds": s,
                   "images_per_s": len(files) / s, "cpu_s_per_mp": s * cores / mp, **stats[name]}
            results.append(row)
            print(f"{label}: {name}: {row['images_per_s']:.1f} img/s, {row['cpu_s_per_mp']:.2f} CPU-s/MP "
                  f"({s:.2f} s for {len(files)} images)"
                  + (f", actor peak RSS {row['actor_peak_rss_mb']:.0f} MB" if "actor_peak_rss_mb" in row else ""),
                  flush=True)
    ray.shutdown()
    shutil.rmtree(work)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cpu": cpu_description(), "ray": ray.__version__, "torch": torch.__version__,
                                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
