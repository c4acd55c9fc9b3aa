"""The local web page and HTTP API of ``aedenoise serve``: upload, denoise, compare, download.

``app.py`` builds the FastAPI application (limits, a bounded queue, the same file writer
as ``aedenoise denoise``); ``static/`` holds the page, its script and its style, served by the
package itself (no CDN). May import: denoising, export, classical, pretrained, io, models and
the top-level shared modules; FastAPI and uvicorn only when the app is built.
"""

from aedenoise.serve.app import ServeSettings, create_app, default_backend, threads_per_job

__all__ = ["ServeSettings", "create_app", "default_backend", "threads_per_job"]
