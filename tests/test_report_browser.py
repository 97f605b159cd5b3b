"""The HTML report in a real browser: headless Chromium renders it, every inlined figure decodes,
and the screenshot is a page with content (not blank, figures drawn)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from report_fixtures import stand_in_tables

from transfergrid.report.figures import write_figures
from transfergrid.report.html import write_report

pytestmark = pytest.mark.browser

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                if shutil.which(n)), None)

# Appended to a copy of the report only: the report itself carries no script.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", *args], check=False, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if BROWSER is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    out = tmp_path_factory.mktemp("browser")
    tables = stand_in_tables()
    paths = write_figures(tables, out / "figures")
    return write_report(out, tables, paths, title="Browser check", study={"name": "demo"}), paths


def test_every_figure_loads_in_the_browser(report):
    path, paths = report
    probe = path.with_name("probe.html")
    probe.write_text(path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'data-images="(\d+)/(\d+)"', done.stdout)
    assert found, done.stderr[-2000:]
    n_png = sum(1 for p in paths if p.suffix == ".png")
    assert (int(found.group(1)), int(found.group(2))) == (n_png, n_png)


def test_screenshot_is_not_blank(report, tmp_path):
    path, _ = report
    shot = tmp_path / "report.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", path.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    assert shot.stat().st_size > 50_000
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique((pixels.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 200  # text, cards and a figure, not a blank or single-colour page
    # the regime bars (Okabe-Ito blue #0072B2) are drawn in the first screen of the page
    blue = np.all(np.abs(pixels * 255 - np.array([0, 114, 178])) < 12, axis=-1)
    assert blue.sum() > 2000
