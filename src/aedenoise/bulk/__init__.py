"""Denoising more files than one process should: the file driver run as a Ray Data pipeline.

``ray_engine.py`` plans the jobs like the local driver and runs them on a pool of Ray
actors, each loading the model once; the bytes written are the local driver's. May import:
denoising and the top-level shared modules; Ray only when used (``aedenoise[ray]``).
"""

from aedenoise.bulk.ray_engine import DenoiseActor, run_jobs_on_ray

__all__ = ["DenoiseActor", "run_jobs_on_ray"]
