"""`aedenoise serve`: the HTTP API, its limits and queue, a bounded load test, and the page in a real browser."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra (pip install 'aedenoise[serve]') is not installed")
pytest.importorskip("httpx", reason="httpx drives the API tests")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from aedenoise.cli import main  # noqa: E402
from aedenoise.io import read_image, write_image  # noqa: E402
from aedenoise.serve import ServeSettings, create_app  # noqa: E402


def _noisy(path: Path, h: int, w: int, channels: int = 3, *, bit_depth: int = 8, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    clean = torch.linspace(0.2, 0.8, w).expand(channels, h, w)
    write_image(path, (clean + 0.1 * torch.randn(channels, h, w, generator=g)).clamp(0, 1), bit_depth=bit_depth)
    return path


def _post(client, path: Path, content_type: str = "image/png", **form: str):
    return client.post("/api/denoise", files={"file": (path.name, path.read_bytes(), content_type)}, data=form)


@pytest.fixture()
def client() -> TestClient:
    return TestClient(create_app(ServeSettings(workers=1, queue=2, backend="torch", max_upload_bytes=2_000_000,
                                               max_pixels=300_000)))


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("aedenoise-serve-*")}


def test_models_health_and_the_page(client: TestClient) -> None:
    models = client.get("/api/models").json()
    names = [m["name"] for m in models["models"]]
    assert names[0] == "auto" and "color-blind" in names and "gray-blind" in names and "tv" in names
    assert all(m["description"] for m in models["models"])
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/").text
    assert "/static/app.js" in page and "http://" not in page and "https://" not in page  # nothing from elsewhere
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


@pytest.mark.parametrize(("channels", "bit_depth", "fmt", "suffix"), [(3, 8, "png", ".png"), (1, 16, "input", ".tif"),
                                                                     (3, 16, "png", ".png")])
def test_the_api_writes_what_the_command_line_writes(client: TestClient, tmp_path: Path, channels: int, bit_depth: int,
                                                     fmt: str, suffix: str) -> None:
    src = _noisy(tmp_path / f"in{suffix}", 48, 60, channels, bit_depth=bit_depth)
    before = _leftovers()
    kind = "image/tiff" if suffix == ".tif" else "image/png"
    answer = _post(client, src, kind, sigma="20", format=fmt)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == f'attachment; filename="in.denoised{suffix}"'
    cli_out = tmp_path / f"cli{suffix}"
    assert main(["denoise", str(src), "-o", str(cli_out), "--sigma", "20", "--no-progress"]) == 0
    assert answer.content == cli_out.read_bytes()  # byte for byte
    (tmp_path / f"api{suffix}").write_bytes(answer.content)
    assert read_image(tmp_path / f"api{suffix}").bit_depth == bit_depth  # 16 bit stays 16 bit
    assert _leftovers() <= before  # the upload's temporary folder is gone


def test_auto_picks_the_model_and_the_strength(client: TestClient, tmp_path: Path) -> None:
    src = _noisy(tmp_path / "gray.png", 40, 40, 1)
    answer = _post(client, src)
    assert answer.status_code == 200 and float(answer.headers["x-aedenoise-sigma"]) > 5
    (tmp_path / "out.png").write_bytes(answer.content)
    assert read_image(tmp_path / "out.png").channels == 1


def test_bad_requests_get_a_4xx_with_a_message(client: TestClient, tmp_path: Path) -> None:
    src = _noisy(tmp_path / "ok.png", 32, 32)
    cases = [
        (client.post("/api/denoise", files={"file": ("a.txt", b"hello", "text/plain")}), 415, "content type"),
        (client.post("/api/denoise", files={"file": ("t.png", src.read_bytes()[:300], "image/png")}), 422, "t.png"),
        (client.post("/api/denoise", files={"file": ("e.png", b"", "image/png")}), 400, "empty"),
        (client.post("/api/denoise", files={"file": ("big.png", b"\x89PNG" + bytes(2_000_001), "image/png")}), 413, "MB"),
        (_post(client, _noisy(tmp_path / "wide.png", 400, 800)), 413, "exceeds the limit"),
        (_post(client, src, model="../../etc/passwd"), 400, "unknown model"),
        (_post(client, src, sigma="loud"), 400, "sigma"),
        (_post(client, src, sigma="300"), 400, "0-255"),
        (_post(client, src, format="gif"), 400, "format"),
    ]
    for answer, status, words in cases:
        assert answer.status_code == status, (answer.status_code, answer.text)
        detail = answer.json()["detail"]
        assert words in detail and "Traceback" not in detail and tempfile.gettempdir() not in detail
    answer = _post(client, src, model=str(src))  # no request names a file on the server
    assert answer.status_code == 400 and "unknown model" in answer.json()["detail"]
    assert client.get("/healthz").json()["busy"] == 0


def test_octet_stream_uploads_previews_and_an_oversized_body(client: TestClient, tmp_path: Path) -> None:
    src = _noisy(tmp_path / "scan.tif", 40, 48, 1, bit_depth=16)
    answer = _post(client, src, "application/octet-stream", sigma="20", format="input")  # what curl -F sends
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/tiff"
    shown = client.post("/api/preview", files={"file": (src.name, src.read_bytes(), "image/tiff")})
    assert shown.status_code == 200 and shown.content.startswith(b"\x89PNG")
    (tmp_path / "preview.png").write_bytes(shown.content)
    assert read_image(tmp_path / "preview.png").bit_depth == 8
    huge = client.post("/api/denoise", files={"file": ("huge.png", b"\x89PNG" + bytes(3_000_000), "image/png")})
    assert huge.status_code == 413 and "MB" in huge.json()["detail"]  # refused by its length, before parsing
    assert client.get("/healthz").json()["busy"] == 0


def test_warm_loads_every_learned_model_once(tmp_path: Path) -> None:
    app = create_app(ServeSettings(backend="torch"))
    server = app.state.server
    server.warm()
    learned = [m["name"] for m in server.catalog if m["kind"] == "learned"]
    assert learned and set(server.models) == set(learned)
    assert all(any(d is m for m in server.models.values()) for d in server.defaults.values())  # auto shares them


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    app = create_app(ServeSettings(workers=1, queue=0, backend="torch"))
    client = TestClient(app)
    src = _noisy(tmp_path / "in.png", 32, 32)
    assert app.state.server.admit()  # the one worker busy
    answer = _post(client, src, sigma="20")
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0 and "busy" in answer.json()["detail"]
    app.state.server.release()
    assert _post(client, src, sigma="20").status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def live_server():
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    settings = ServeSettings(workers=2, queue=3, backend="torch")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_twenty_concurrent_requests_are_answered_or_refused_never_lost(live_server: str, tmp_path: Path) -> None:
    sizes = [(32, 32), (64, 96), (120, 80), (48, 200), (16, 24)] * 4
    files = [_noisy(tmp_path / f"in{i}.png", h, w, 3 if i % 2 else 1, seed=i) for i, (h, w) in enumerate(sizes)]

    def send(path: Path) -> tuple[Path, httpx.Response]:
        with httpx.Client(timeout=120) as http:
            return path, http.post(f"{live_server}/api/denoise", files={"file": (path.name, path.read_bytes(), "image/png")},
                                   data={"sigma": "25"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, files))
    assert len(answers) == 20
    statuses = [a.status_code for _, a in answers]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 5, statuses
    for path, answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) > 0
            continue
        out = tmp_path / f"{path.stem}.out.png"
        out.write_bytes(answer.content)
        assert read_image(out).data.shape == read_image(path).data.shape
    health = httpx.get(f"{live_server}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["busy"] == 0


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_page_in_a_real_browser(live_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright drives the browser")
    src = _noisy(tmp_path / "photo.png", 96, 128, 3, seed=7)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--no-first-run", "--disable-sync"])
        page = browser.new_page(accept_downloads=True)
        page.goto(live_server)
        page.wait_for_function("document.getElementById('model').options.length > 1")
        page.set_input_files("#file", str(src))
        page.click("#go")
        page.wait_for_selector("#download[data-ready='1']", timeout=60_000)
        assert page.locator("#error").is_hidden()
        page.locator("#split").fill("30")
        assert "30%" in page.locator("#after").get_attribute("style")
        page.click("#compare")  # 1:1 pixels around the click
        assert "zoomed" in page.locator("#compare").get_attribute("class")
        with page.expect_download() as info:
            page.click("#download")
        downloaded = tmp_path / "downloaded.png"
        info.value.save_as(downloaded)
        page.screenshot(path=str(tmp_path / "page.png"))
        page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])", timeout=30_000)
        assert "content type" in page.locator("#error").inner_text()
        browser.close()
    cli_out = tmp_path / "cli.png"
    assert main(["denoise", str(src), "-o", str(cli_out), "--no-progress"]) == 0  # defaults: shipped model, auto
    assert downloaded.read_bytes() == cli_out.read_bytes()
