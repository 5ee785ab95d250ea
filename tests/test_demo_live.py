"""The web page's Live tab (vc/demo_live.py), its event functions called directly.

A tiny random model keeps it fast: these tests check behaviour (lengths, messages, state), not
quality. In a real browser with a fake microphone: tests/test_browser.py.
"""
from __future__ import annotations

import io

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


def _wavs(take_outputs):
    """The audio a take yielded (wav bytes; the other items are gr.skip() or None), decoded."""
    outs = []
    for data, box, *_ in take_outputs:
        assert not getattr(box, "visible", False), box
        if isinstance(data, bytes):
            wav, sr = sf.read(io.BytesIO(data), dtype="float32")
            assert sr == 22050 and wav.ndim == 1
            outs.append(wav)
    return outs


def test_live_tab_streams_converted_audio(tiny_checkpoint, example_clips):
    """A take as the page runs it: Record opens a take (live_start), the page's microphone sends
    its 0.1 s pieces (48 kHz, 16-bit) to the take's inbox (live_push, what the route calls); the
    take (a generator, Gradio's streaming output) converts them and yields wav chunks; after
    Stop, the rest. All that was spoken comes back converted."""
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    try:
        config = app.get_config_file()
        props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
        assert props["live-out"]["streaming"] and props["live-out"]["autoplay"]
        assert props["live-record"]["visible"] and not props["live-stop"]["visible"]
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
        clicks = {d["targets"][0][0]: d for d in config["dependencies"] if d["targets"] and d["targets"][0][1] == "click"}
        assert "vcLive.start()" in clicks[ids["live-record"]]["js"]          # the page's capture
        assert "vcLive.stop()" in clicks[ids["live-stop"]]["js"]

        take, box, record, stop = event_fn(app, "live_start")(str(example_clips[1]), "griffinlim", None, "")
        assert take and not box.visible and not record.visible and stop.visible
        for seq, (rate, samples) in enumerate(_mic(example_clips[0], seconds=0.1)):
            assert demo_live.live_push(take, seq, rate, samples.tobytes()) == 204
        record, stop = event_fn(app, "live_stop")(take)
        assert record.visible and not stop.visible
        outs = _wavs(event_fn(app, "live_play")(take))
        assert len(outs) > 5                                           # in pieces, as it came
        spoken = load_audio(example_clips[0], 22050).size
        assert abs(sum(o.size for o in outs) - spoken) <= 2 * HOP      # all of it (at 22,050 Hz)
        assert np.abs(np.concatenate(outs)).max() > 1e-3
        assert take not in demo_live._LIVE                             # the take's state is gone
    finally:
        app.close()


def test_live_push_takes_only_the_next_piece_of_an_open_take(tiny_checkpoint, example_clips):
    from vc.page import get_converter
    conv = get_converter(tiny_checkpoint, "griffinlim", 10)
    take = demo_live.open_take(conv, conv.target(example_clips[1]))
    piece = np.zeros(4800, "<i2").tobytes()
    push = demo_live.live_push
    assert push("no-such-take", 0, 48000, piece) == 404
    assert push(take, 1, 48000, piece) == 409                          # not the next one
    assert push(take, 0, 48000, piece[:-1]) == 400                     # half a sample
    assert push(take, 0, 1000, piece) == 400                           # no microphone's rate
    assert push(take, 0, 8000, np.zeros(31 * 8000, "<i2").tobytes()) == 413
    assert push(take, 0, 48000, piece) == 204
    assert push(take, 1, 48000, piece) == 204
    assert demo_live._LIVE[take]["inbox"].qsize() == 2
    demo_live._LIVE[take]["stopped"].set()
    assert push(take, 2, 48000, piece) == 404                          # stopped: no more
    demo_live._LIVE.pop(take)


def test_the_route_serves_live_push(tiny_checkpoint, example_clips):
    """POST /vc-live/TOKEN?seq=N&rate=R on the served page (vc.demo.launch adds the route)."""
    import socket

    import httpx
    from vc.page import get_converter
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = demo.launch(app, port=port, block=False, quiet=True)
        conv = get_converter(tiny_checkpoint, "griffinlim", 10)
        take = demo_live.open_take(conv, conv.target(example_clips[1]))
        piece = (np.arange(4800) % 100).astype("<i2")
        post = lambda token, seq: httpx.post(f"{url}{demo_live.LIVE_PATH}/{token}", params={"seq": seq, "rate": 48000},
                                             content=piece.tobytes(), timeout=60).status_code
        assert post(take, 0) == 204 and post(take, 1) == 204
        assert post("no-such-take", 0) == 404 and post(take, 5) == 409
        rate, samples = demo_live._LIVE[take]["inbox"].get_nowait()
        assert rate == 48000 and np.array_equal(samples, piece)
        demo_live._LIVE.pop(take)
    finally:
        app.close()


@pytest.mark.parametrize("case", ["no voice", "silent voice", "no microphone"])
def test_live_refusal_is_one_line(tiny_checkpoint, tmp_path, example_clips, case):
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    try:
        silent_wav(tmp_path / "quiet.wav")
        target, microphone = {"no voice": (None, ""), "silent voice": (str(tmp_path / "quiet.wav"), ""),
                              "no microphone": (str(example_clips[1]), "NotAllowedError: Permission denied")}[case]
        take, box, *_ = event_fn(app, "live_start")(target, "griffinlim", None, microphone)
        assert take == "" and box.visible
        words = {"no voice": "Pick the voice first", "silent voice": "The voice (quiet.wav): all silence",
                 "no microphone": "The microphone is not available (NotAllowedError: Permission denied)"}[case]
        assert words in box.value and "/tmp" not in box.value and "Traceback" not in box.value
        assert _wavs(event_fn(app, "live_play")(take)) == []            # no take: nothing plays
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
