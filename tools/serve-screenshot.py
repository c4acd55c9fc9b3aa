"""Screenshot of the `aedenoise serve` page after denoising the demo photo (docs/img/serve.png).

    .venv/bin/python tools/serve-screenshot.py docs/img/serve.png

Starts the server on a free loopback port, adds Gaussian noise (sigma 25) to the shipped
sample photo, drives Debian's chromium through the page with Playwright and saves the page.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from aedenoise.benchmark import noisy_image, quantize_8bit
from aedenoise.io import read_image, write_image
from aedenoise.report.photo import sample_photo
from aedenoise.serve import ServeSettings, create_app, default_backend


def main(out: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeSettings(backend=default_backend()))
    app.state.server.warm()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with tempfile.TemporaryDirectory() as tmp:
        noisy = Path(tmp) / "astronaut-noisy.png"
        x = read_image(sample_photo()).data
        write_image(noisy, quantize_8bit(noisy_image(x, 25, dataset="demo", image="astronaut.png"))[0])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.getElementById('model').options.length > 1")
            page.set_input_files("#file", str(noisy))
            page.click("#go")
            page.wait_for_selector("#download[data-ready='1']", timeout=120_000)
            page.locator("#split").fill("50")
            page.screenshot(path=out)
            browser.close()
    server.should_exit = True
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/serve.png")
