"""The `stems app` page in real headless Chromium against a live `stems app` with the tiny model:
a real excerpt added through the file input and another file dropped on the page, separated,
played, muted, a stem downloaded; a bad file's error. With STEMS_SCREENSHOT_DIR set, the page is
saved there as app.png (docs/app.png)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import download, page_command

STEMS = ["drums", "bass", "other", "vocals"]
pytestmark = pytest.mark.slow

# a file dropped on the page: the drums the app just wrote, fetched back, as a drag from the desktop would carry it
DROP = """async (url) => {
  const file = new File([await (await fetch(url)).blob()], "dropped.wav", { type: "audio/wav" });
  const carried = new DataTransfer();
  carried.items.add(file);
  document.dispatchEvent(new DragEvent("dragover", { dataTransfer: carried, cancelable: true }));
  document.dispatchEvent(new DragEvent("drop", { dataTransfer: carried, cancelable: true }));
}"""


@pytest.fixture
def live_app(tmp_path, tiny_checkpoint):
    """(URL, library folder) of a running `stems app`; for the screenshot it offers the shipped
    models, whose stems look like the music."""
    lib = tmp_path / "lib"
    model = [] if os.environ.get("STEMS_SCREENSHOT_DIR") else ["--checkpoint", str(tiny_checkpoint)]
    with page_command("app", "--out", str(lib), *model) as url:
        yield url, lib


def test_page_separates_plays_mutes_and_downloads(browser, live_app, tmp_path, example_stems):
    url, lib = live_app
    excerpt = example_stems[1]  # stempeg's real MUSDB excerpt, a .stem.mp4: its mix is what is separated
    track = excerpt.name[: -len(".stem.mp4")]
    bad = tmp_path / "notes.mp3"
    bad.write_text("a text file, whatever its name says\n" * 10)
    page = browser.new_page(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    page.goto(url)
    page.wait_for_selector("[data-setting=model] option", state="attached")
    page.set_input_files("[data-upload]", [str(excerpt), str(bad)])

    page.wait_for_selector("[data-job][data-state=done]", timeout=60_000)
    failed = page.wait_for_selector("[data-job][data-state=failed]", timeout=60_000)
    assert failed.get_attribute("data-error").startswith("notes.mp3: not an audio file")
    assert "not an audio file" in failed.inner_text()
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)  # the first finished track opens
    assert page.eval_on_selector_all("[data-stem]", "rows => rows.map(r => r.dataset.stem)") == STEMS
    assert page.text_content("#track-name") == track

    page.click("#play")
    page.wait_for_timeout(1000)
    assert page.evaluate("audition.playing()") and float(page.get_attribute("#time", "data-time")) > 0.3
    page.click("[data-stem=vocals] .mute")
    page.wait_for_function("() => audition.gain('vocals') < 1e-4")
    page.keyboard.press("Space")
    assert not page.evaluate("audition.playing()")

    saved = tmp_path / "vocals.wav"
    assert download(page, "[data-download-stem=vocals]", saved).suggested_filename == f"{track} - vocals.wav"
    assert saved.read_bytes() == (lib / track / "vocals.wav").read_bytes()

    page.evaluate(DROP, page.get_attribute("[data-download-stem=drums]", "href"))
    page.wait_for_selector("#library [data-track=dropped]", timeout=60_000)
    assert page.eval_on_selector_all("[data-job]", "jobs => jobs.map(j => j.dataset.state)") == ["done", "failed", "done"]
    page.click("#library [data-track=dropped] .open")  # another track, without reloading
    page.wait_for_function("() => document.title.startsWith('dropped')")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.get_attribute("body", "data-error") is None
    if os.environ.get("STEMS_SCREENSHOT_DIR"):
        page.click(f"#library [data-track='{track}'] .open")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        page.click("[data-stem=vocals] .mute")
        page.evaluate("audition.seek(2.4)")
        page.screenshot(path=Path(os.environ["STEMS_SCREENSHOT_DIR"]) / "app.png")
