"""The `stems audition` page in real headless Chromium (Debian's, driven by Playwright; nothing is
downloaded) against a live `stems audition` server on freshly separated stems."""

from __future__ import annotations

import shutil

import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.cli import app

from conftest import download, page_command

STEMS = ["drums", "bass", "other", "vocals"]
pytestmark = pytest.mark.slow


@pytest.fixture
def live_server(tmp_path, tiny_checkpoint, song_wav):
    """URL of `stems audition` serving two tracks: 'my song', just separated, and 'spoilt' (listed
    second), whose vocals are not audio."""
    out = tmp_path / "separated"
    done = CliRunner().invoke(app, ["separate", str(song_wav), "-o", str(out), "--checkpoint", str(tiny_checkpoint)])
    assert done.exit_code == 0, done.output
    shutil.copytree(out / "my song", out / "spoilt")
    (out / "spoilt" / "vocals.wav").write_bytes(b"RIFF but not really a wav file")
    with page_command("audition", str(out)) as url:
        yield url


def test_page_plays_mutes_solos_and_downloads_the_mix(browser, live_server, tmp_path, song_wav):
    page = browser.new_page(viewport={"width": 1280, "height": 560}, accept_downloads=True)
    page.goto(live_server)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.eval_on_selector_all("[data-stem]", "rows => rows.map(r => r.dataset.stem)") == STEMS
    assert page.get_attribute("body", "data-error") is None

    clock_before = page.evaluate("audition.contextTime()")
    page.keyboard.press("Space")
    page.wait_for_timeout(1000)
    played = float(page.get_attribute("#time", "data-time"))
    assert page.evaluate("audition.playing()") and 0.5 < played < 2.5
    assert page.evaluate("audition.contextTime()") - clock_before > 0.5  # the audio clock really runs

    page.click("[data-stem=vocals] .mute")
    page.wait_for_function("() => audition.gain('vocals') < 1e-4")
    assert page.get_attribute("[data-stem=vocals]", "data-gain") == "0"
    page.keyboard.press("1")  # solo drums
    page.wait_for_function("() => ['bass', 'other', 'vocals'].every(s => audition.gain(s) < 1e-4)")
    assert page.evaluate("audition.gain('drums')") == pytest.approx(1.0, abs=1e-3)
    assert page.get_attribute("[data-stem=drums] .solo", "aria-pressed") == "true"
    page.keyboard.press("Space")
    assert not page.evaluate("audition.playing()")

    mix = tmp_path / "mix.wav"
    download(page, "#download", mix)
    assert abs(sf.info(mix).duration - sf.info(song_wav).duration) < 0.05

    screenshot = tmp_path / "audition.png"
    page.screenshot(path=screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.select_option("#track", label="spoilt")  # its vocals do not decode
    page.wait_for_selector("body[data-error]", timeout=30_000)
    assert "cannot decode vocals.wav" in page.text_content("#error")
    assert page.get_attribute("body", "data-ready") == "false"
    assert page.eval_on_selector_all("#track option", "options => options.map(o => o.textContent)") == ["my song", "spoilt"]
