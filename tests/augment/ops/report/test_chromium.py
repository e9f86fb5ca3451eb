"""The bundled sample's report rendered by headless Chromium (Debian `chromium`), offline, with screenshots.

Set MOON_REPORT_SCREENSHOTS=DIR to keep the screenshots (index.png, gallery-001.png) for a look.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from augment.ops.report import build

pytestmark = [pytest.mark.slow, pytest.mark.external]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1400, 1800)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sample_report(sample_run_in_process):
    """The report of the bundled sample through the default (local) profile (the session's run)."""
    build.write_report(str(sample_run_in_process.out))
    return sample_run_in_process.out


def screenshot(tmp_path: Path, report: Path, page: str) -> Path:
    keep = os.environ.get("MOON_REPORT_SCREENSHOTS")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{page}.png"
    png.unlink(missing_ok=True)
    done = chromium(tmp_path, f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    (report / "report" / f"{page}.html").as_uri())
    assert png.exists(), done.stderr[-2000:]
    return png


@pytest.mark.parametrize("page", ["index", "gallery-001"])
def test_report_page_renders_with_its_images(sample_report, tmp_path, page):
    png = screenshot(tmp_path, sample_report, page)
    with Image.open(png) as image:
        assert image.size == WINDOW
        # Product photographs on the page give thousands of colours; broken images or an unstyled page do not.
        assert image.convert("RGB").getcolors(maxcolors=8000) is None


def test_gallery_dom_has_one_card_per_product(sample_report, tmp_path):
    done = chromium(tmp_path, "--dump-dom", (sample_report / "report" / "gallery-001.html").as_uri())
    assert done.stdout.count('<article class="product"') == build.PAGE_SIZE
