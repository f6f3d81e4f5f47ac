"""What only a browser shows: the page layout, the theme toggle and microphone recording.

Drives Debian's Chromium through Playwright; the microphone is Chromium's fake capture device
playing a real speech WAV.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.launching import running_app
from tests.speech import prompt_path
from utils.audio import load_audio

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def app_url(workspace):
    with running_app() as url:
        yield url + "/"


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory):
    """Speech then silence at 48 kHz int16: Chromium loops the file, the silence keeps the
    recording to one utterance."""
    speech = load_audio(prompt_path("agent-alreadyon"))
    padded = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(16000 * 20, np.float32)])
    import soxr

    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(path, soxr.resample(padded, 16000, 48000), 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def page(fake_microphone):
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(permissions=["microphone"])
        yield context.new_page()
        browser.close()


def test_layout_and_theme_toggle(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Transcribe").click()
    page.get_by_text("Advanced decoding").wait_for(state="visible")
    expect(page.get_by_role("button", name="Transcribe", exact=True)).to_be_visible()
    dark_before = page.evaluate("document.body.classList.contains('dark')")
    page.locator("#theme-toggle").click()
    page.wait_for_timeout(300)
    assert page.evaluate("document.body.classList.contains('dark')") != dark_before


def test_microphone_recording_is_transcribed(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Transcribe").click()
    page.get_by_role("button", name="Record").first.click()
    page.wait_for_timeout(6500)
    page.get_by_role("button", name="Stop").first.click()
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Transcribe", exact=True).click()
    transcript = page.locator("#transcript textarea")
    page.wait_for_function(
        "() => document.querySelector('#transcript textarea').value.length > 0", timeout=90_000
    )
    text = transcript.input_value().lower()
    assert "agent" in text and "pound" in text, text


def test_datasets_dashboard_plots_and_plays_a_selected_sample(page, app_url, workspace):
    from augmentation.tts import Sentence, SynthOptions, synthesize_dataset

    sentences = [Sentence("b1", "ሰላም ነህ ወይ?"), Sentence("b2", "አዲስ አበባ ትልቅ ከተማ ናት።")]
    synthesize_dataset(sentences, workspace.datasets / "browser-set", SynthOptions(voices=1))
    page.goto(app_url)
    page.get_by_role("tab", name="Datasets").click()
    picker = page.locator("#dataset-picker input")
    picker.fill("browser-set")
    picker.press("Enter")
    page.get_by_role("button", name="Refresh statistics").click()
    page.wait_for_function(
        "() => document.querySelector('#dataset-summary')?.innerText.includes('2 utterances')",
        timeout=60_000,
    )
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 7")
    page.locator('#worst-samples [data-testid="cell-0-0"]').click()
    page.wait_for_function(
        "() => document.querySelectorAll('#sample-plot .js-plotly-plot').length == 1",
        timeout=30_000,
    )
    link = page.locator('#sample-audio [data-testid="download-link"]')
    link.wait_for(timeout=30_000)
    assert link.get_attribute("href").endswith(".wav")  # the selected sample is loaded to play
    expect(page.locator('#sample-audio [data-testid="waveform-Sample"]')).to_be_visible()


FAKE_TRAINER = """
import json, os, sys, time
from utils.training.events import EventWriter, stop_requested

args = sys.argv[1:]
run_dir = args[args.index("--output-dir") + 1]
config = json.load(open(args[args.index("--config") + 1]))
steps, events = config["max_steps"], EventWriter(run_dir)
events.write("start", max_steps=steps, config=config, resumed=False, devices="fake cpu")
for step in range(1, steps + 1):
    time.sleep(0.05)
    while step == 10 and not os.path.exists(os.path.join(run_dir, "GO")):
        time.sleep(0.05)  # the test lets the run go on once the reloaded page reattached
    events.write("step", step=step, epoch=step // 10, loss=2.0 / step, lr=1e-3, grad_norm=1.0,
                 samples_per_second=10.0, eta_seconds=(steps - step) * 0.2, max_steps=steps)
    if step % 10 == 0:
        events.write("val", step=step, **{"val/wer": 1.0 / step, "val/cer": 0.5 / step})
    if stop_requested(run_dir):
        events.write("end", state="stopped", message=f"stopped at step {step}")
        sys.exit(0)
events.write("end", state="finished", message="finished", metrics={})
"""


def test_training_tab_follows_a_run_and_reattaches_after_a_reload(
    page, app_url, workspace, tmp_path, monkeypatch
):
    """A fake trainer (events only, no model; it waits at step 10 for the test) stands in for
    the real one: the page starts it, draws the dashboard, reattaches after a reload while the
    run goes, and follows it to 100%."""
    from pathlib import Path

    from utils.training import jobs

    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAINER, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
    monkeypatch.setattr(jobs, "TRAIN_SCRIPT", script)
    (workspace.datasets / "browser-train").mkdir(parents=True)
    (workspace.datasets / "browser-train" / "manifest.jsonl").write_text("", encoding="utf-8")
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    picker = page.locator("#training-dataset input")
    picker.fill("browser-train")
    picker.press("Enter")
    page.get_by_label("Max steps").fill("60")
    page.locator("#training-start").click()
    progress = "() => document.querySelector('#training-progress')?.innerText || ''"
    page.wait_for_function(f"({progress})().includes('running')", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelectorAll('#training-dashboard .js-plotly-plot').length == 1"
    )
    page.reload()
    page.get_by_role("tab", name="Training").click()
    page.wait_for_function(f"({progress})().includes('running')", timeout=30_000)
    # expect() retries: the buttons follow the status a render later, and one last timer tick
    # may still be in flight when the run ends
    expect(page.locator("#training-stop")).to_be_enabled()
    (run_dir,) = workspace.runs.glob("*-browser-train-lora")
    (run_dir / "GO").touch()
    page.wait_for_function(f"({progress})().startsWith('100%')", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelectorAll('#training-dashboard .js-plotly-plot').length == 1"
    )
    expect(page.locator("#training-status")).to_contain_text("finished")
    expect(page.locator("#training-start")).to_be_enabled()
    expect(page.locator("#training-stop")).to_be_disabled()
