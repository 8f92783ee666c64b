"""A real headless browser for the tests: Debian's chromium, with every connection outside 127.0.0.1 refused.

Pages a person looks at (the DVC plots page, the tag report, the MLflow UI) are rendered here as
they would be in an office without network: a page that needs a CDN shows up blank.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "chromium"


def chromium() -> str:
    """The browser's path; a clear failure when it is missing (`.ci/run` installs it)."""
    path = shutil.which(CHROMIUM)
    if path is None:
        raise AssertionError("chromium is not installed: `apt-get install chromium` (.ci/run does it)")
    return path


def _run(url: str, args: list[str], wait_ms: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # no network: every host name fails to resolve except the loopback the tests serve on
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--hide-scrollbars",
            f"--virtual-time-budget={wait_ms}",
            *args,
            url,
        ]
        return subprocess.run(cmd, capture_output=True, timeout=120, check=False)


def screenshot(url: str, out: Path, size: tuple[int, int] = (1280, 1600), wait_ms: int = 3000) -> Path:
    """A PNG of the page as the browser drew it."""
    done = _run(url, [f"--window-size={size[0]},{size[1]}", f"--screenshot={out}"], wait_ms)
    assert out.exists(), done.stderr.decode("utf-8", "replace")[-2000:]
    return out


def dom(url: str, wait_ms: int = 3000, size: tuple[int, int] = (1280, 1600)) -> str:
    """The page's DOM after its scripts ran (`--dump-dom`)."""
    done = _run(url, [f"--window-size={size[0]},{size[1]}", "--dump-dom"], wait_ms)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    return done.stdout.decode("utf-8", "replace")


def colored_share(png: Path) -> float:
    """Share of the pixels that are clearly coloured (not white, grey or black): near 0 for a blank or text-only page."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean())


def evaluate(page: Path, expression: str) -> str:
    """A JavaScript expression's value (as text) in a local page once it has loaded, from a probing copy beside it."""
    probe = page.with_name(f".probe-{page.name}")
    script = f"<script>window.addEventListener('load', () => {{document.title = 'probe:' + String({expression});}});</script>"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    try:
        html = dom(probe.resolve().as_uri())
    finally:
        probe.unlink()
    return html.split("<title>probe:", 1)[1].split("</title>", 1)[0]


def image_widths(page: Path) -> list[int]:
    """The natural width of every image of a local page once loaded (0 for one that did not load)."""
    widths = evaluate(page, "Array.from(document.images).map(i => i.naturalWidth).join(',')")
    return [int(w) for w in widths.split(",") if w]
