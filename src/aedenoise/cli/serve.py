"""``aedenoise serve``: the local web page and HTTP API (docs/serve.md)."""

from __future__ import annotations

import argparse
import os


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a local web page and HTTP API for denoising images",
                       description="Serve a web page (drop an image, compare before/after, download) and an HTTP "
                                   "API (POST /api/denoise, GET /api/models, GET /healthz) on this machine. "
                                   "Needs pip install 'aedenoise[serve]'.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="images denoised at once (default: one per core); each gets cores/N threads")
    p.add_argument("--queue", type=int, default=4, metavar="N", help="requests that may wait (default 4); beyond: 503")
    p.add_argument("--max-upload-mb", type=int, default=64, metavar="MB", help="largest upload (default 64 MB)")
    p.add_argument("--max-megapixels", type=float, default=40.0, metavar="MP", help="largest image (default 40 MP)")
    p.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="learned models on onnxruntime where installed (auto, the default), else PyTorch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from aedenoise.errors import ConfigError

    try:
        import uvicorn
    except ImportError:
        raise ConfigError("aedenoise serve needs FastAPI and uvicorn: pip install 'aedenoise[serve]'") from None
    from aedenoise.serve import ServeSettings, create_app, default_backend, threads_per_job

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = args.workers or cores
    if workers < 1 or args.queue < 0 or args.max_upload_mb < 1 or args.max_megapixels <= 0:
        raise ConfigError("--workers, --max-upload-mb and --max-megapixels must be positive, --queue at least 0")
    torch.set_num_threads(threads_per_job(workers, cores))
    backend = default_backend() if args.backend == "auto" else args.backend
    settings = ServeSettings(workers=workers, queue=args.queue, max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                             max_pixels=int(args.max_megapixels * 1e6), backend=backend)
    app = create_app(settings)
    print(f"aedenoise serve: loading the shipped models (backend {backend})", flush=True)
    app.state.server.warm()
    print(f"aedenoise serve: http://{args.host}:{args.port}/ ({workers} worker(s), queue {args.queue}; Ctrl-C stops)",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
