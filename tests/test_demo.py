"""The web page, served in this process and called as an API through gradio_client.

A tiny random model keeps it fast: these tests check behaviour (files, lengths, messages), not
quality. Bad input must come back as the page's one-line message (gradio_client's AppError).
"""
from __future__ import annotations

import copy
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from conftest import event_fn, noise_wav, silent_wav, write_wav  # noqa: E402
from vc import demo, page  # noqa: E402
from vc.audio import load_audio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOP = 256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(url, downloads) -> Client:
    """A client patient enough for a loaded machine (gradio_client's default HTTP timeout is 20 s)."""
    return Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads),
                  httpx_kwargs={"timeout": 600})


def serve(app, max_upload_mb: float):
    return demo.launch(app, port=free_port(), max_upload_mb=max_upload_mb, block=False, quiet=True)


@pytest.fixture(scope="module")
def server(tiny_checkpoint, served_threads):
    """The page refuses uploads over 1 MB itself; Gradio's own upload limit is set to 2 MB here
    (in `vc demo` both are --max-upload-mb) so that each layer can be tested."""
    app = demo.build_app([tiny_checkpoint], max_upload_mb=1, max_seconds=10, default_vocoder="griffinlim")
    yield serve(app, 2)
    app.close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return connect(server, tmp_path_factory.mktemp("downloads"))


def swap(client, a, b, **kw):
    return client.predict(clip_a=handle_file(str(a)) if a else None,
                          clip_b=handle_file(str(b)) if b else None, api_name="/swap", **kw)


def check_output(path, source):
    """A decodable 22,050 Hz mono wav with the source's length after trimming (within 2 frames)."""
    wav, sr = sf.read(path, dtype="float32")
    expected = load_audio(source, 22050).size
    assert sr == 22050 and wav.ndim == 1
    assert abs(wav.size - expected) <= 2 * HOP, (wav.size, expected)
    assert np.isfinite(wav).all() and np.abs(wav).max() > 1e-3


def test_swap_gives_both_conversions(client, example_clips):
    a, b = example_clips[0], example_clips[1]
    ab, ba, stages = swap(client, a, b, vocoder="griffinlim")
    check_output(ab, a)
    check_output(ba, b)
    assert Path(ab).name == f"{a.stem}_in_voice_of_{b.stem}.wav"
    assert Path(ba).name == f"{b.stem}_in_voice_of_{a.stem}.wav"
    assert {"load", "features", "model", "vocoder", "total"} <= set(stages)
    assert all(v >= 0 for v in stages.values())


def test_swap_hifigan_and_loudness_option(client, wav_a, wav_b):
    ab, ba, stages = swap(client, wav_a, wav_b, vocoder="hifigan", match_input_loudness=False)
    check_output(ab, wav_a)
    check_output(ba, wav_b)
    assert stages["vocoder"] > 0


def test_same_file_twice_gives_two_outputs(client, wav_a):
    ab, ba, _ = swap(client, wav_a, wav_a, vocoder="griffinlim")
    assert Path(ab).name != Path(ba).name
    check_output(ab, wav_a)
    check_output(ba, wav_a)


def test_converter_loaded_once_and_shared(client, tiny_checkpoint, wav_a, wav_b):
    jobs = [client.submit(clip_a=handle_file(str(wav_a)), clip_b=handle_file(str(wav_b)),
                          vocoder="griffinlim", api_name="/swap") for _ in range(3)]
    results = [job.result(timeout=900) for job in jobs]          # simultaneous visitors all answered
    for ab, ba, _ in results:
        check_output(ab, wav_a)
        check_output(ba, wav_b)
    # this page's converters (other tests' pages, e.g. the browser test's, may share the process)
    keys = [k for k in page._CONVERTERS if k == (str(Path(tiny_checkpoint).resolve()), "griffinlim", 10)]
    assert len(keys) == 1


def _corrupt(path):
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)


BAD = {  # name: (file name, how to make it, expected words in the message)
    "silent": ("quiet.wav", silent_wav, "all silence"),
    "corrupt": ("broken.wav", _corrupt, "unreadable or corrupt"),
    "empty": ("empty.wav", lambda p: p.write_bytes(b""), "empty"),
    "too short": ("blip.wav", lambda p: write_wav(p, 0.2), "too short"),
    "too long": ("long.wav", lambda p: write_wav(p, 12.0, 8000), "too long"),
    "unsupported": ("notes.txt", lambda p: p.write_text("not audio"), "unsupported format"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_clip_is_one_clear_message(client, tmp_path, wav_a, case):
    name, make, words = BAD[case]
    make(tmp_path / name)
    with pytest.raises(gradio_client.exceptions.AppError) as err:
        swap(client, wav_a, tmp_path / name, vocoder="griffinlim")
    message = str(err.value)
    assert "/tmp" not in message                                     # no server paths shown
    assert message.startswith(f"Clip B ({name}): ") and words in message, message
    assert "Traceback" not in message and "\n" not in message


def test_missing_clip(client, wav_a):
    with pytest.raises(gradio_client.exceptions.AppError, match="Clip B is missing"):
        swap(client, wav_a, None)
    with pytest.raises(gradio_client.exceptions.AppError, match="Clip A is missing"):
        swap(client, None, wav_a)


def test_upload_over_size_limit_is_refused(client, tmp_path, wav_a):
    big = write_wav(tmp_path / "big.wav", 40.0, 16000)               # 1.2 MB: over the page's 1 MB
    with pytest.raises(gradio_client.exceptions.AppError,
                       match=r"^Clip A \(big.wav\): file too large: 1.2 MB \(the limit is 1 MB\)$"):
        swap(client, big, wav_a, vocoder="griffinlim")
    huge = write_wav(tmp_path / "huge.wav", 80.0, 16000)             # 2.5 MB: over Gradio's 2 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        swap(client, wav_a, huge, vocoder="griffinlim")


def test_no_model_installed(tmp_path, monkeypatch, wav_a, wav_b):
    monkeypatch.setattr(page, "PRETRAINED", tmp_path / "empty")       # as if default.pt were absent
    app = demo.build_app([])
    try:
        url = serve(app, 20)
        client = connect(url, tmp_path)
        config = client.config
        banner = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "no-model"]
        assert banner and banner[0]["visible"] and "No trained model is installed" in banner[0]["value"]
        with pytest.raises(gradio_client.exceptions.AppError, match="no trained model is installed"):
            swap(client, wav_a, wav_b)
    finally:
        app.close()


def test_banner_hidden_when_a_model_is_there(client):
    banner = [c["props"] for c in client.config["components"] if c["props"].get("elem_id") == "no-model"]
    assert banner and not banner[0]["visible"]


def test_model_choices(tmp_path, monkeypatch):
    installed = tmp_path / "pretrained"
    installed.mkdir()
    for name in ("other.pt", "default.pt"):
        (installed / name).write_bytes(b"")
    (tmp_path / "mine").mkdir()
    mine = tmp_path / "mine" / "default.pt"
    mine.write_bytes(b"")
    monkeypatch.setattr(page, "PRETRAINED", installed)
    choices = demo.model_choices([mine])
    assert list(choices) == ["mine/default.pt", "pretrained/default.pt", "other.pt"]   # --model first
    assert choices["other.pt"] == (installed / "other.pt").resolve()


def test_app_py_bad_model_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--model", str(tmp_path / "nope.pt")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("checkpoint not found") and "Traceback" not in proc.stderr


def test_flags(tmp_path):
    import argparse
    parser = argparse.ArgumentParser()
    demo.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "--model", "a.pt", "--model", "b.pt", "--host", "0.0.0.0",
                              "--port", "8000", "--share", "--max-upload-mb", "5"])
    assert (args.model, args.host, args.port, args.share, args.max_upload_mb) == \
        (["a.pt", "b.pt"], "0.0.0.0", 8000, True, 5.0)
    assert args.func is demo.run


def _page_swap(app):
    """The function behind the page's button (not the API): it returns messages, never raises."""
    return event_fn(app, "swap_on_page")


def _config(app, elem_id):
    return next(c for c in app.get_config_file()["components"] if c["props"].get("elem_id") == elem_id)


@pytest.mark.parametrize("case", ["missing B", "bad A", "bad B", "no clip in particular"])
def test_page_message_stays_next_to_its_clip(tiny_checkpoint, tmp_path, wav_a, case):
    import gradio as gr
    app = demo.build_app([tiny_checkpoint], max_upload_mb=1, max_seconds=10, default_vocoder="griffinlim")
    try:
        silent_wav(tmp_path / "quiet.wav")
        a, b, model = {"missing B": (wav_a, None, None), "bad A": (tmp_path / "quiet.wav", wav_a, None),
                       "bad B": (wav_a, tmp_path / "quiet.wav", None),
                       "no clip in particular": (wav_a, wav_a, "nope.pt")}[case]
        out = _page_swap(app)(str(a) if a else None, str(b) if b else None, "griffinlim", model, True,
                              progress=lambda *x, **k: None)
        assert out[:4] == (None, None, None, None)             # no stale outputs next to an error
        boxes = dict(zip(("A", "B", None), out[4:]))
        shown = {k for k, box in boxes.items() if box.visible}
        expected = {"missing B": "B", "bad A": "A", "bad B": "B", "no clip in particular": None}[case]
        assert shown == {expected}
        assert all(isinstance(box, gr.HTML) for box in boxes.values())
        words = {"missing B": "Clip B is missing", "bad A": "Clip A (quiet.wav): all silence",
                 "bad B": "Clip B (quiet.wav): all silence", "no clip in particular": "unknown model"}[case]
        assert words in boxes[expected].value and "/tmp" not in boxes[expected].value
        ok = _page_swap(app)(str(wav_a), str(wav_a), "griffinlim", None, True, progress=lambda *x, **k: None)
        assert ok[0] and ok[1] and not any(box.visible for box in ok[4:])
    finally:
        app.close()


def test_message_boxes_and_one_progress_indicator(tiny_checkpoint):
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    config = app.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    for box in ("error-a", "error-b", "error"):
        assert _config(app, box)["type"] == "html" and not _config(app, box)["props"]["visible"]
    button = [d for d in config["dependencies"] if d["targets"] == [(ids["swap"], "click")]]
    assert len(button) == 1 and button[0]["show_progress_on"] == [ids["timings"]]
    # changing a clip hides its message
    for clip, box in (("clip-a", "error-a"), ("clip-b", "error-b")):
        hides = [d for d in config["dependencies"] if d["targets"] == [(ids[clip], "change")]]
        assert hides and ids[box] in hides[0]["outputs"] and ids["error"] in hides[0]["outputs"]
    app.close()


def test_launch_names_the_share_flag(tiny_checkpoint, capsys):
    app = demo.build_app([tiny_checkpoint], default_vocoder="griffinlim")
    try:
        url = demo.launch(app, port=free_port(), block=False, quiet=False)
        out = capsys.readouterr().out
        assert "share=True" not in out and "launch()" not in out
        assert "--share" in out and url in out
    finally:
        app.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_long_clips_move_the_progress_bar(tiny_checkpoint, example_clips, threads):
    """Each vocoded piece of either direction moves the bar (one thread per conversion: both
    directions at once; more: one after the other); the result is the same either way."""
    import torch
    conv = demo.get_converter(tiny_checkpoint, "griffinlim", 60)
    conv = copy.copy(conv)
    conv.chunk_frames = 100
    conv.timings = demo.Timings()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seen = []
        ab, ba, _ = demo.swap_clips(conv, example_clips[0], example_clips[1],
                                    progress=lambda value, desc="": seen.append(value))
    finally:
        torch.set_num_threads(before)
    vocoding = [v for v in seen if v >= 0.3]
    assert len(vocoding) >= 3 and vocoding == sorted(vocoding) and vocoding[-1] <= 0.95 + 1e-9
    assert ab.size > 0 and ba.size > 0 and "vocoder" in conv.timings.stages


# -- not speech: a warning next to the clip (issue 12) ----------------------------------------------
def test_page_warns_next_to_a_clip_that_is_not_speech(tmp_path, example_clips):
    """The shipped model has a calibrated threshold: white noise as clip B gets a warning next
    to B, the conversion still runs; real speech gets none."""
    from vc import anomaly
    from vc.convert import DEFAULT_MODEL
    if anomaly.load_calibration(DEFAULT_MODEL) is None:
        pytest.skip("no calibrated threshold for the installed model")
    app = demo.build_app([], default_vocoder="griffinlim")           # the installed models, default.pt first
    try:
        noise = noise_wav(tmp_path / "noise.wav")
        out = _page_swap(app)(str(example_clips[0]), str(noise), "griffinlim", None, True,
                              progress=lambda *x, **k: None)
        warn_a, warn_b = out[7], out[8]
        assert out[0] and out[1] and not any(box.visible for box in out[4:7])   # converted, no refusal
        assert warn_b.visible and not warn_a.visible
        assert "Clip B (noise.wav) does not sound like clean speech (score " in warn_b.value
        assert "the conversion may fail" in warn_b.value and "/tmp" not in warn_b.value
        out = _page_swap(app)(str(example_clips[0]), str(example_clips[1]), "griffinlim", None, True,
                              progress=lambda *x, **k: None)
        assert not out[7].visible and not out[8].visible
        wav, sr = sf.read(str(example_clips[0]), dtype="float32")          # clip A, heavily clipped
        sf.write(str(tmp_path / "clipped.wav"), np.clip(20 * wav / np.abs(wav).max(), -1, 1), sr)
        out = _page_swap(app)(str(tmp_path / "clipped.wav"), str(example_clips[1]), "griffinlim", None, True,
                              progress=lambda *x, **k: None)
        assert out[7].visible and "Clip A (clipped.wav) sounds clipped (" in out[7].value and not out[8].visible
        config = app.get_config_file()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
        hides = [d for d in config["dependencies"] if d["targets"] == [(ids["clip-b"], "change")]]
        assert ids["warn-b"] in hides[0]["outputs"]                      # a new clip B hides it
    finally:
        app.close()


@pytest.mark.parametrize("strength,adapt", [(1.0, 0), (1.5, 0), (1.5, 5)])
def test_page_swap_applies_the_strength_as_the_command_line_does(tiny_checkpoint, wav_a, wav_b, strength, adapt):
    from vc.convert import load
    conv = load(tiny_checkpoint, vocoder="griffinlim", strength=strength, adapt_steps=adapt)
    ab, ba, _ = demo.swap_clips(conv, str(wav_a), str(wav_b))
    ab2, ba2 = conv.swap(str(wav_a), str(wav_b))
    np.testing.assert_allclose(ab, ab2, atol=1e-4)
    np.testing.assert_allclose(ba, ba2, atol=1e-4)


def test_page_strength_changes_the_output_and_a_bad_one_is_refused(tiny_checkpoint, wav_a, wav_b):
    app = demo.build_app([tiny_checkpoint], max_seconds=10, default_vocoder="griffinlim")
    try:
        run = lambda s: _page_swap(app)(str(wav_a), str(wav_b), "griffinlim", None, True, s,  # noqa: E731
                                        progress=lambda *x, **k: None)
        plain, strong = run(1.0), run(2.0)
        a1, a2 = sf.read(plain[0])[0], sf.read(strong[0])[0]
        assert a1.shape == a2.shape and np.abs(a1 - a2).max() > 1e-4
        assert _config(app, "strength")["props"]["value"] == 1.0
        bad = run(9.0)
        assert bad[:4] == (None, None, None, None) and bad[6].visible and "strength 9" in bad[6].value
    finally:
        app.close()


def test_the_sliders_start_at_the_models_own_strength_and_matching(tmp_path):
    from conftest import tiny_model
    from vc.checkpoint import save_checkpoint
    from vc.features import MelConfig
    path = tmp_path / "strong.pt"
    save_checkpoint(path, tiny_model(), MelConfig(), meta={"strength": 1.25, "match": 0.25, "match_high": 0.5})
    app = demo.build_app([path], max_seconds=10, default_vocoder="griffinlim")
    try:
        assert _config(app, "strength")["props"]["value"] == 1.25
        assert _config(app, "match")["props"]["value"] == 0.25
        assert _config(app, "match-high")["props"]["value"] == 0.5
    finally:
        app.close()


@pytest.mark.parametrize("option, weight, bad", [("match", 0.5, 1.5), ("match_high", 1.0, -0.5)])
def test_page_matching_is_the_command_lines_and_a_bad_weight_is_refused(tiny_checkpoint, wav_a, wav_b, option,
                                                                       weight, bad):
    """The page's envelope and high-band matching sliders give what `--match W` and `--match-high W`
    give (vc.load(match=W), vc.load(match_high=W)); off by default for a model without them in its
    meta; a weight out of range is one line under the button."""
    from vc.convert import load
    name = option.replace("_", "-")                       # the slider's elem_id and the option's name
    app = demo.build_app([tiny_checkpoint], max_seconds=10, default_vocoder="griffinlim")
    try:
        assert _config(app, name)["props"]["value"] == 0.0

        def run(w):                                       # the page's inputs after the strength: match, match_high
            weights = (w, None) if option == "match" else (None, w)
            return _page_swap(app)(str(wav_a), str(wav_b), "griffinlim", None, False, None, *weights,
                                   progress=lambda *x, **k: None)
        matched = run(weight)
        ab, ba = load(tiny_checkpoint, vocoder="griffinlim", **{option: weight}).swap(str(wav_a), str(wav_b),
                                                                                     match_input_loudness=False)
        np.testing.assert_allclose(sf.read(matched[0], dtype="float32")[0], ab, atol=2e-4)
        np.testing.assert_allclose(sf.read(matched[1], dtype="float32")[0], ba, atol=2e-4)
        plain = sf.read(run(0.0)[0], dtype="float32")[0]
        assert np.abs(plain - ab).max() > 1e-3
        refused = run(bad)
        assert refused[:4] == (None, None, None, None) and refused[6].visible
        assert f"{name} {bad:g}" in refused[6].value
    finally:
        app.close()
