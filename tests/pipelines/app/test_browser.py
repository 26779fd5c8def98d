"""``gas app`` in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by
selenium uploads a photo, starts a generation, waits for the video and loads its source; then opens the
Shards tab, inspects a folder and shows a sample. Screenshots go to the test's temporary folder."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                 reason="needs Debian's chromium and chromium-driver (make setup installs them)")]


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1400",
                     "--disable-gpu", "--mute-audio"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.25).until(condition)


def _upload(driver, elem_id: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(str(path))
    # once the upload is done, the component lists the file (its name, without the suffix, on a line)
    _wait(driver, lambda d: path.stem in d.find_element(By.ID, elem_id).text.splitlines(), 60)


def test_a_generation_in_the_browser_shows_a_playable_video(browser, app_server, reference_files, tmp_path):
    from selenium.webdriver.common.by import By

    _, url, _ = app_server
    browser.get(url)
    _wait(browser, lambda d: d.find_elements(By.ID, "generate-button"))
    _upload(browser, "photo", Path(reference_files.image))
    _upload(browser, "mask", Path(reference_files.mask))
    _upload(browser, "smpl", Path(reference_files.smpl))
    _upload(browser, "camera", Path(reference_files.camera))
    browser.find_element(By.ID, "generate-button").click()
    video = _wait(browser, lambda d: next((v for v in d.find_elements(By.CSS_SELECTOR, "#result-video video")
                                           if v.get_attribute("src")), None))
    source = video.get_attribute("src")
    with urllib.request.urlopen(source, timeout=30) as response:
        assert response.status == 200
        body = response.read()
    assert len(body) > 1000 and body[4:8] == b"ftyp"  # an MP4 file
    # the browser decodes it: the video element knows its duration and frame size
    _wait(browser, lambda d: d.execute_script("return arguments[0].readyState >= 1 && arguments[0].videoWidth > 0;",
                                              video), 60)
    assert "4 frames" in browser.find_element(By.ID, "status").text
    browser.execute_script("arguments[0].pause(); arguments[0].currentTime = 0.3; window.scrollTo(0, 0);", video)
    shot = tmp_path / "app_generate.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    _keep(shot)

    # The Shards tab: inspect the data root's folder, show a sample's contact sheet.
    next(tab for tab in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if tab.text == "Shards").click()
    _wait(browser, lambda d: d.find_element(By.ID, "inspect-button").is_displayed())
    browser.find_element(By.ID, "inspect-button").click()
    _wait(browser, lambda d: "5 samples" in d.find_element(By.ID, "summary").text)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#sheet img"))
    browser.execute_script("window.scrollTo(0, 0);")
    shot = tmp_path / "app_shards.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    _keep(shot)


def _keep(shot: Path) -> None:
    """Copy a screenshot to $GAS_APP_SCREENSHOTS when set (how docs/images/ is refreshed)."""
    import os

    folder = os.environ.get("GAS_APP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(folder) / shot.name)
