"""The local web app and HTTP API of ``aedenoise serve`` (FastAPI; the page is static files in this package).

* ``GET /``: the page (``static/``; no script, style or font from anywhere else).
* ``GET /api/models``: the models a request may name, each with a one-line description.
* ``POST /api/denoise``: multipart form, the image as ``file``; optional ``model`` (a name from
  ``/api/models``, default ``auto``: the shipped photo default for the image's channels),
  ``sigma`` (``auto`` or 0-255) and ``format`` (``png``, default, or ``input``: the upload's
  format). Answers with the denoised file, written by the same code as ``aedenoise denoise``
  (so the bytes are the same for the same image and settings); 16-bit images stay 16-bit.
* ``POST /api/preview``: the upload as an 8-bit PNG, for browsers that cannot show TIFF.
* ``GET /healthz``: ``{"status": "ok", ...}``.

Safe to leave running on a machine: an upload is refused with a 4xx and a message when it is
too large (bytes or pixels), truncated, not an image or of a wrong content type; no request
names a file on the server (models are chosen by name from a fixed list); uploads live in a
temporary folder removed after each request; at most ``workers`` images are denoised at once
(tiled, so memory stays bounded) and at most ``queue`` more wait, beyond which requests get
503 with ``Retry-After``.
"""


import asyncio
import json
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from aedenoise.classical import list_baselines
from aedenoise.denoising import Job, default_model_for, load_denoiser, run_jobs
from aedenoise.denoising.selection import Backend
from aedenoise.errors import AedenoiseError, ConfigError
from aedenoise.io import read_image, write_image
from aedenoise.models import Denoiser
from aedenoise.pretrained import list_pretrained, pretrained_weights

CONTENT_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif", "image/webp": ".webp",
                 "image/bmp": ".bmp"}
SUFFIXES = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".tif": ".tif", ".tiff": ".tif", ".webp": ".webp",
            ".bmp": ".bmp"}
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".tif": "image/tiff", ".webp": "image/webp", ".bmp": "image/bmp"}
CLASSICAL = {"gaussian": "Gaussian filter: fast, blurs edges", "median": "median filter: for salt-and-pepper noise",
             "tv": "total variation (scikit-image): flat regions, keeps edges",
             "wavelet": "wavelet shrinkage (scikit-image)", "nlm": "non-local means (scikit-image): slow",
             "bm3d": "BM3D (the bm3d package, non-commercial licence): strong, slow"}


@dataclass(frozen=True)
class ServeSettings:
    """Limits and resources of one server. ``sigma`` values are on the 0-255 scale only at the API."""

    workers: int = 1
    queue: int = 4
    max_upload_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000
    backend: Backend = "torch"
    retry_after_s: int = 5
    models: tuple[str, ...] = field(default_factory=tuple)  # empty: every shipped photo model and classical method


class _Server:
    """The state behind the routes: loaded models, the worker pool and the admission count."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="denoise")
        self.lock = threading.Lock()
        self.admitted = 0  # running + waiting
        self.models: dict[str, Denoiser] = {}
        self.defaults: dict[tuple[int, str], Denoiser] = {}
        self.catalog = self._catalog()

    def _catalog(self) -> list[dict[str, object]]:
        photo = [n for n in list_pretrained() if pretrained_weights(n).task == "photo"]
        rows: list[dict[str, object]] = [{"name": "auto", "kind": "default",
                                          "description": "the shipped photo model for the image's channels (gray or color)"}]
        rows += [{"name": n, "kind": "learned", "description": pretrained_weights(n).description,
                  "default_for": "gray" if pretrained_weights(n).channels == 1 else "color"} for n in photo]
        rows += [{"name": n, "kind": "classical", "description": CLASSICAL.get(n, n)} for n in list_baselines()]
        wanted = set(self.settings.models)
        return [r for r in rows if not wanted or r["name"] in wanted or r["name"] == "auto"]

    def names(self) -> list[str]:
        return [str(r["name"]) for r in self.catalog]

    def model(self, name: str) -> Denoiser | None:
        """The loaded model ``name`` (``None`` for auto); :class:`ConfigError` for a name not offered."""
        if name not in self.names():
            raise ConfigError(f"unknown model {name!r}; GET /api/models lists the choices: {', '.join(self.names())}")
        if name == "auto":
            return None
        with self.lock:
            if name not in self.models:
                backend = self.settings.backend if name in list_pretrained() else "torch"
                self.models[name] = load_denoiser(name, backend=backend)
            return self.models[name]

    def warm(self) -> None:
        """Load every model offered now (onnxruntime: exported once), not on a request; ``auto`` shares them."""
        for row in self.catalog:
            if row["kind"] == "learned":
                self.model(str(row["name"]))
        for channels in (1, 3):
            for noise in ("camera", "gaussian"):  # run_jobs' keys: auto -> camera, a level -> gaussian
                try:
                    spec = default_model_for(channels, noise=noise)
                except ConfigError:
                    continue  # none shipped for that kind of image
                if spec not in self.models:
                    self.models[spec] = load_denoiser(spec, backend=self.settings.backend)
                self.defaults[(channels, noise)] = self.models[spec]

    def admit(self) -> bool:
        with self.lock:
            if self.admitted >= self.settings.workers + self.settings.queue:
                return False
            self.admitted += 1
            return True

    def release(self) -> None:
        with self.lock:
            self.admitted -= 1


def _safe_stem(filename: str | None) -> str:
    stem = Path(filename or "image").stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80] or "image"


def _sigma(text: str | None) -> float | str:
    if text is None or text.strip().lower() in ("", "auto"):
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"sigma {text!r}: give 'auto' or a number on the 0-255 scale") from None
    if not 0 <= value <= 255:
        raise ConfigError(f"sigma {value:g}: outside 0-255")
    return value / 255.0


class _Gate:
    """ASGI middleware in front of the upload routes: admission before the body is read, and a byte limit.

    A request beyond ``workers + queue`` in flight gets 503 with ``Retry-After`` at once; a
    body over the limit (by ``Content-Length``, or counted as it streams) gets 413 before it
    is parsed, so no upload fills memory or the disk. The slot is given back when the work
    for the request has finished (``scope["aedenoise.release"]``), not when the client leaves.
    """

    PATHS = ("/api/denoise", "/api/preview")
    OVERHEAD = 64 * 1024  # multipart headers and form fields around the file

    def __init__(self, app, server: _Server) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") not in self.PATHS:
            return await self.app(scope, receive, send)
        limit = self.server.settings.max_upload_bytes + self.OVERHEAD
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _reject(send, 413, f"upload larger than the limit of "
                                            f"{self.server.settings.max_upload_bytes // (1024 * 1024)} MB")
        if not self.server.admit():
            return await _reject(send, 503, "busy: every worker and queue place is taken; retry shortly",
                                 {"retry-after": str(self.server.settings.retry_after_s)})
        released = threading.Event()

        def release() -> None:  # once, by whoever finishes last: the handler or its worker thread
            if not released.is_set():
                released.set()
                self.server.release()

        scope["aedenoise.release"] = release
        seen, too_large, answered = 0, False, False
        too_large_detail = f"upload larger than the limit of {self.server.settings.max_upload_bytes // (1024 * 1024)} MB"

        async def counted():
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                too_large = True
                raise _TooLarge()  # the framework turns it into an error response, replaced below
            return message

        async def guarded(message):
            nonlocal answered
            if not too_large:
                return await send(message)
            if message["type"] == "http.response.start" and not answered:
                answered = True
                await _reject(send, 413, too_large_detail)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            if not answered:
                answered = True
                await _reject(send, 413, too_large_detail)
        finally:
            if not scope.get("aedenoise.handed_over"):
                release()


class _TooLarge(Exception):
    pass


async def _reject(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ServeSettings | None = None):  # -> fastapi.FastAPI
    """The FastAPI application (``uvicorn.run(create_app(), ...)``); ``aedenoise serve`` runs it."""
    from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    settings = settings or ServeSettings()
    server = _Server(settings)
    static = Path(str(resources.files("aedenoise.serve") / "static"))
    app = FastAPI(title="aedenoise", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(_Gate, server=server)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):  # never a traceback to the client
        return JSONResponse({"detail": "internal error; see the server's log"}, status_code=500)

    @app.get("/")
    async def page():
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "workers": settings.workers, "queue": settings.queue, "busy": server.admitted,
                "backend": settings.backend}

    @app.get("/api/models")
    async def models():
        return {"models": server.catalog, "default": "auto", "backend": settings.backend}

    async def _read_upload(file: UploadFile) -> tuple[bytes, str]:
        kind = (file.content_type or "").split(";")[0].strip().lower()
        named = Path(file.filename or "").suffix.lower()
        suffix = CONTENT_TYPES.get(kind) or (SUFFIXES.get(named) if kind in ("application/octet-stream", "") else None)
        if suffix is None:
            raise HTTPException(415, f"{_safe_stem(file.filename)}: content type {kind or 'none'!r} is not an image "
                                     f"aedenoise reads ({', '.join(CONTENT_TYPES)}; or application/octet-stream with "
                                     f"an image file name)")
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"{_safe_stem(file.filename)}: larger than the limit of "
                                     f"{settings.max_upload_bytes // (1024 * 1024)} MB")
        if not data:
            raise HTTPException(400, f"{_safe_stem(file.filename)}: empty upload")
        return data, suffix

    async def _in_pool(request: Request, work, *args):
        """``work(folder, *args)`` in a fresh temporary folder on a worker; the slot is freed when it ends."""
        release = request.scope["aedenoise.release"]

        def job():
            try:
                with tempfile.TemporaryDirectory(prefix="aedenoise-serve-") as folder:
                    return work(Path(folder), *args)
            finally:
                release()

        request.scope["aedenoise.handed_over"] = True
        return await asyncio.wrap_future(server.pool.submit(job))

    def _denoise_work(folder: Path, data: bytes, suffix: str, out_suffix: str, name: str, model: str,
                      level: float | str):
        src, dst = folder / f"upload{suffix}", folder / f"result{out_suffix}"
        src.write_bytes(data)
        den = server.model(model)
        result = run_jobs([Job(src, dst)], model=den, sigma=level, backend=settings.backend,
                          default_models=server.defaults, max_pixels=settings.max_pixels).results[0]
        if result.status != "written":
            return result, None, _scrub(result.message, folder, name)
        return result, dst.read_bytes(), None

    def _preview_work(folder: Path, data: bytes, suffix: str, name: str):
        src, dst = folder / f"upload{suffix}", folder / "preview.png"
        src.write_bytes(data)
        try:
            image = read_image(src, max_pixels=settings.max_pixels)
            write_image(dst, image.data, alpha=image.alpha, bit_depth=8)
        except AedenoiseError as err:
            return None, _scrub(str(err), folder, name)
        return dst.read_bytes(), None

    @app.post("/api/denoise")
    async def denoise(request: Request, file: UploadFile = File(...), model: str = Form("auto"),
                      sigma: str | None = Form(None), format: str = Form("png")):
        data, suffix = await _read_upload(file)
        name = _safe_stem(file.filename)
        if model not in server.names():
            raise HTTPException(400, f"unknown model {model[:80]!r}; GET /api/models lists the choices: "
                                     f"{', '.join(server.names())}")
        try:
            level = _sigma(sigma)
        except ConfigError as err:
            raise HTTPException(400, str(err)) from None
        if format not in ("png", "input"):
            raise HTTPException(400, f"format {format!r}: use png or input")
        out_suffix = ".png" if format == "png" else suffix
        result, body, problem = await _in_pool(request, _denoise_work, data, suffix, out_suffix, f"{name}{suffix}",
                                               model, level)
        if problem is not None:
            raise HTTPException(413 if "exceeds the limit" in problem else 422, problem)
        headers = {"Content-Disposition": f'attachment; filename="{name}.denoised{out_suffix}"'}
        if result.sigma is not None:
            headers["X-Aedenoise-Sigma"] = f"{result.sigma * 255:.2f}"
        return Response(body, media_type=MEDIA[out_suffix], headers=headers)

    @app.post("/api/preview")
    async def preview(request: Request, file: UploadFile = File(...)):
        data, suffix = await _read_upload(file)
        body, problem = await _in_pool(request, _preview_work, data, suffix, f"{_safe_stem(file.filename)}{suffix}")
        if problem is not None:
            raise HTTPException(413 if "exceeds the limit" in problem else 422, problem)
        return Response(body, media_type="image/png")

    return app


def _scrub(message: str, folder: Path, name: str) -> str:
    """``message`` with the server's temporary paths replaced by the upload's name (no path leaves the server)."""
    message = re.sub(re.escape(str(folder)) + r"/upload\.\w+", name, message)
    message = message.replace(str(folder), "<upload>")
    return re.sub(r"; if the file is trusted, raise it with \S+ or max_pixels=", "", message)


def default_backend() -> Backend:
    """``onnxruntime`` where it is installed (faster on the CPUs measured, docs/serve.md), else ``torch``."""
    import importlib.util

    found = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript"))
    return "onnxruntime" if found else "torch"


def threads_per_job(workers: int, cores: int) -> int:
    """CPU threads each denoising job gets: the ``cores`` shared out between the ``workers``."""
    return max(1, cores // max(1, workers))
