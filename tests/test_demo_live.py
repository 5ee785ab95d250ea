"""The web page's Live tab (vc/demo_live.py), its event functions called directly.

A tiny random model keeps it fast: these tests check behaviour (lengths, messages, state), not
quality. In a real browser with a fake microphone: tests/test_browser.py.
"""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio")

from conftest import event_fn, noise_wav, silent_wav  # noqa: E402
from vc import demo, demo_live  # noqa: E402
from vc.audio import load_audio  # noqa: E402

HOP = 256


def _mic(clip, rate=48000, seconds=0.25):
    """A clip as the browser's microphone stream: chunks of (rate, int16 samples)."""
    import soxr
    wav = soxr.resample(load_audio(clip, 22050), 22050, rate)
    size = int(rate * seconds)
    return [(rate, (wav[i: i + size] * 32767).astype(np.int16)) for i in range(0, wav.size, size)]


def test_live_tab_streams_converted_audio(tiny_checkpoint, example_clips):
    """A take as the page runs it: the microphone's chunks (48 kHz int16) go into the visitor's
    inbox; the take (a generator, Gradio's streaming output) converts them and yields wav chunks;
    after Stop, the rest. All that was spoken comes back converted."""
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    try:
        config = app.get_config_file()
        props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
        assert props["live-mic"]["streaming"] and props["live-mic"]["sources"] == ["microphone"]
        assert props["live-out"]["streaming"] and props["live-out"]["autoplay"]
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
        events = {t[1] for d in config["dependencies"] for t in d["targets"] if t[0] == ids["live-mic"]}
        assert {"stream", "start_recording", "stop_recording"} <= events

        request = SimpleNamespace(session_hash="visitor-1")
        for chunk in _mic(example_clips[0], seconds=0.1):              # what the browser sends
            event_fn(app, "live_push")(chunk, request)
        event_fn(app, "live_stop")(request)
        outs = []
        for data, box in event_fn(app, "live_play")(str(example_clips[1]), "griffinlim", None, request):
            assert not box.visible and data is not None
            wav, sr = sf.read(io.BytesIO(data), dtype="float32")
            assert sr == 22050 and wav.ndim == 1
            outs.append(wav)
        assert len(outs) > 5                                           # in pieces, as it came
        spoken = load_audio(example_clips[0], 22050).size
        assert abs(sum(o.size for o in outs) - spoken) <= 2 * HOP      # all of it (at 22,050 Hz)
        assert np.abs(np.concatenate(outs)).max() > 1e-3
        assert "visitor-1" not in demo_live._LIVE                      # the take's state is gone
    finally:
        app.close()


@pytest.mark.parametrize("case", ["no voice", "silent voice"])
def test_live_bad_voice_is_one_line(tiny_checkpoint, tmp_path, case):
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    try:
        silent_wav(tmp_path / "quiet.wav")
        target = {"no voice": None, "silent voice": str(tmp_path / "quiet.wav")}[case]
        [(data, box)] = list(event_fn(app, "live_play")(target, "griffinlim", None, SimpleNamespace(session_hash="v")))
        assert data is None and box.visible
        words = {"no voice": "Pick the voice first", "silent voice": "The voice (quiet.wav): all silence"}[case]
        assert words in box.value and "/tmp" not in box.value and "Traceback" not in box.value
    finally:
        app.close()


def test_live_voice_that_is_not_speech_gets_a_warning(tmp_path):
    from vc import anomaly
    from vc.convert import DEFAULT_MODEL
    if anomaly.load_calibration(DEFAULT_MODEL) is None:
        pytest.skip("no calibrated threshold for the installed model")
    app = demo.build_app([], default_vocoder="griffinlim")
    try:
        warn, error = event_fn(app, "live_check")(str(noise_wav(tmp_path / "hiss.wav")), None)
        assert warn.visible and not error.visible
        assert "The voice (hiss.wav) does not sound like clean speech" in warn.value
    finally:
        app.close()


def test_layers_point_one_way():
    """page <- demo_live <- demo: the shared helpers know neither tab, the Live tab not the page."""
    import subprocess
    import sys
    code = ("import sys, vc.page; assert not {'vc.demo', 'vc.demo_live'} & set(sys.modules); "
            "import vc.demo_live; assert 'vc.demo' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
