"""``aedenoise denoise --engine ray``: the file batch driver as a Ray Data pipeline.

The driver lists the inputs and plans every output exactly as the local driver does
(:func:`aedenoise.denoising.expand_inputs`, :func:`~aedenoise.denoising.plan_jobs`: same
names, same checks, before any work); Ray Data then hands the jobs, one file per row, to a
pool of actors. Each actor loads the model once and runs each job through
:func:`aedenoise.denoising.run_jobs` (read, sigma, tiles, atomic write): the bytes written are
the local driver's. Inputs and outputs must be paths every node can reach (a shared file
system). A failing file is a ``failed`` row with its reason; the run goes on.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from aedenoise.denoising import DenoiseSummary, FileResult, Job, Sigma, load_denoiser, run_jobs
from aedenoise.denoising.selection import Backend
from aedenoise.errors import AedenoiseError, ConfigError

INSTALL_HINT = "pip install 'aedenoise[ray]'"


class DenoiseActor:
    """One model per actor; ``__call__`` denoises a batch of job rows and returns what happened to each."""

    def __init__(self, *, model: str | None, sigma: Sigma, tile: int | None, bit_depth: int | None, overwrite: bool,
                 backend: Backend, threads: int, noise: str | None = None) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = None if model is None else load_denoiser(model, backend=backend)
        self.sigma, self.tile, self.bit_depth, self.overwrite, self.backend = sigma, tile, bit_depth, overwrite, backend
        self.defaults: dict = {}
        self.noise = noise

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {"input": [], "output": [], "status": [], "message": [], "seconds": [], "sigma": [],
                                     "peak_rss_mb": []}
        for src, dst, skip in zip(batch["input"], batch["output"], batch["skip"]):
            job = Job(Path(str(src)), Path(str(dst)), bool(skip))
            result = run_jobs([job], model=self.model, sigma=self.sigma, tile=self.tile, bit_depth=self.bit_depth,
                              overwrite=self.overwrite, backend=self.backend, default_models=self.defaults,
                              noise=self.noise).results[0]
            out["input"].append(str(src))
            out["output"].append(str(dst))
            out["status"].append(result.status)
            out["message"].append(result.message)
            out["seconds"].append(result.seconds)
            out["sigma"].append(np.nan if result.sigma is None else result.sigma)
            out["peak_rss_mb"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB
        return {k: np.asarray(v) for k, v in out.items()}


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise AedenoiseError(f"--engine ray needs Ray Data: {INSTALL_HINT}") from None
    return ray


def run_jobs_on_ray(
    jobs: list[Job],
    *,
    model: str | None = None,
    sigma: Sigma = None,
    tile: int | None = None,
    bit_depth: int | None = None,
    overwrite: bool = False,
    backend: Backend = "torch",
    address: str | None = None,
    actors: int | None = None,
    threads_per_actor: int = 1,
    on_result: Callable[[FileResult], None] | None = None,
    stats: dict[str, float] | None = None,
    noise: str | None = None,
) -> DenoiseSummary:
    """Denoise ``jobs`` (from :func:`~aedenoise.denoising.plan_jobs`) on a Ray cluster; results in input order.

    ``model``: a spec for :func:`~aedenoise.denoising.load_denoiser` (``None``: the shipped
    default per image and ``noise``, as :func:`~aedenoise.denoising.run_jobs` picks it), loaded once by each actor. ``address``: a running cluster
    (``ray://...`` or ``auto``; default ``$RAY_ADDRESS``), else a local one sized to this
    machine. ``actors``: the pool size (default: the cluster's CPUs / ``threads_per_actor``).
    ``stats``, when given, receives ``actors`` and ``actor_peak_rss_mb`` (the largest actor's
    peak resident memory).
    """
    if threads_per_actor < 1 or (actors is not None and actors < 1):
        raise ConfigError("--ray-actors and --ray-threads must be at least 1")
    ray = _ray()
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:  # "local": a fresh Ray on this machine, never one a `ray start` left running by chance
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = actors or max(1, cpus // threads_per_actor)
        if stats is not None:
            stats["actors"] = pool
        # absolute paths: the actors' working folder is not this process's
        rows = [{"input": str(j.input.resolve()), "output": str(j.output.resolve()), "skip": j.skip} for j in jobs]
        spec = str(Path(model).resolve()) if model is not None and Path(model).is_file() else model
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * pool)))
        ds = ds.map_batches(DenoiseActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=pool),
                            num_cpus=threads_per_actor, max_restarts=1, max_task_retries=1,  # no endless retries
                            fn_constructor_kwargs={"model": spec, "sigma": sigma, "tile": tile, "bit_depth": bit_depth,
                                                   "overwrite": overwrite, "backend": backend,
                                                   "threads": threads_per_actor, "noise": noise})
        done: dict[str, FileResult] = {}
        broke = ""
        try:
            for row in ds.iter_rows():
                s = float(row["sigma"])
                result = FileResult(Path(row["input"]), Path(row["output"]), str(row["status"]),  # type: ignore[arg-type]
                                    float(row["seconds"]), str(row["message"]), None if np.isnan(s) else s)
                done[row["input"]] = result
                if stats is not None:
                    stats["actor_peak_rss_mb"] = max(stats.get("actor_peak_rss_mb", 0.0), float(row["peak_rss_mb"]))
                if on_result is not None:
                    on_result(result)
        except Exception as err:  # an actor died (out of memory, say): report what did not finish
            broke = f"the Ray pipeline stopped ({type(err).__name__}: {str(err).strip().splitlines()[0][:200]})"
    finally:
        if started_here:
            ray.shutdown()
    results = []
    for job, row in zip(jobs, rows):
        result = done.get(row["input"])
        if result is None:
            result = FileResult(job.input, job.output, "failed", message=broke or "no result came back from Ray")
            if on_result is not None:
                on_result(result)
        results.append(FileResult(job.input, job.output, result.status, result.seconds, result.message, result.sigma))
    return DenoiseSummary(tuple(results), time.perf_counter() - start)
