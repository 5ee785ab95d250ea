"""vc.convert: the conversion strength (source + s * (target - source) of the speaker vectors)."""
from __future__ import annotations

import pytest
import soundfile as sf
import torch

from conftest import tiny_model, write_wav
from vc.checkpoint import save_checkpoint
from vc.cli import main
from vc.convert import MAX_ADAPT_STEPS, MAX_STRENGTH, load
from vc.features import MelConfig


@pytest.fixture
def mels(tiny_checkpoint, wav_a, wav_b):
    conv = load(tiny_checkpoint, vocoder="griffinlim")
    return conv, conv.mel(conv.load(wav_a)), conv.mel(conv.load(wav_b))


def decode_with(conv, source, speaker):
    return conv.model.decode(conv.model.encode(source).with_speaker(speaker[None]))[0]


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0, 1.5, MAX_STRENGTH])
def test_strength_moves_the_vector_along_source_to_target(mels, strength):
    conv, src, tgt = mels
    conv.strength = strength
    with torch.inference_mode():
        v_s, v_t = conv.model.embed_speaker(src)[0], conv.model.embed_speaker(tgt)[0]
        out = conv.convert_mel(src, v_t)
        expected = decode_with(conv, src, v_s + strength * (v_t - v_s))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_strength_0_is_the_reconstruction_and_1_the_plain_conversion(mels):
    conv, src, tgt = mels
    with torch.inference_mode():
        v_s, v_t = conv.model.embed_speaker(src)[0], conv.model.embed_speaker(tgt)[0]
        conv.strength = 0.0
        torch.testing.assert_close(conv.convert_mel(src, v_t), decode_with(conv, src, v_s), rtol=1e-5, atol=1e-5)
        conv.strength = 1.0
        plain = conv.convert_mel(src, v_t)
        torch.testing.assert_close(plain, decode_with(conv, src, v_t), rtol=0, atol=0)
        conv.strength = 2.0
        assert (conv.convert_mel(src, v_t) - plain).abs().max() > 1e-3      # it does change the output


def test_a_model_carries_its_default_strength_and_load_overrides_it(tmp_path):
    path = tmp_path / "strong.pt"
    save_checkpoint(path, tiny_model(), MelConfig(), meta={"strength": 1.5})
    assert load(path, vocoder="griffinlim").strength == 1.5
    assert load(path, vocoder="griffinlim", strength=1.0).strength == 1.0
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, tiny_model(), MelConfig(), meta={})
    assert load(plain, vocoder="griffinlim").strength == 1.0


@pytest.mark.parametrize("bad", [-0.1, MAX_STRENGTH + 0.5, float("nan"), "strong"])
def test_bad_strength_is_refused(tiny_checkpoint, bad):
    with pytest.raises(ValueError, match="strength"):
        load(tiny_checkpoint, vocoder="griffinlim", strength=bad)


@pytest.mark.parametrize("command", ["convert", "swap", "batch"])
def test_bad_strength_option_is_one_line_before_any_work(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys, command):
    out = tmp_path / "out"
    argv = {"convert": ["convert", str(wav_a), str(wav_b), "-o", str(out / "o.wav")],
            "swap": ["swap", str(wav_a), str(wav_b), "-o", str(out)],
            "batch": ["batch", "--sources", str(wav_a.parent), "--target", str(wav_b), "-o", str(out)]}[command]
    assert main(argv + ["--model", str(tiny_checkpoint), "--vocoder", "griffinlim", "--strength", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--strength 7: give a number from 0 to 3" in err, err
    assert not out.exists() or not any(out.rglob("*.wav"))


def test_strength_option_changes_what_convert_writes(tmp_path, tiny_checkpoint, wav_a, wav_b):
    written = {}
    for s in ("1", "2"):
        out = tmp_path / f"s{s}.wav"
        assert main(["convert", str(wav_a), str(wav_b), "-o", str(out), "--model", str(tiny_checkpoint),
                     "--vocoder", "griffinlim", "--strength", s]) == 0
        written[s], _ = sf.read(str(out))
    assert written["1"].shape == written["2"].shape and abs(written["1"] - written["2"]).max() > 1e-4


def test_batch_passes_the_strength_to_its_workers(tmp_path, tiny_checkpoint, wav_b):
    src = write_wav(tmp_path / "in" / "x.wav", 1.0, 16000, f0=150, seed=3)
    written = {}
    for s in ("1", "2"):
        out = tmp_path / f"out{s}"
        assert main(["batch", "--sources", str(src.parent), "--target", str(wav_b), "-o", str(out),
                     "--model", str(tiny_checkpoint), "--vocoder", "griffinlim", "--workers", "1",
                     "--threads", "1", "--strength", s]) == 0
        written[s], _ = sf.read(str(out / "x.wav"))
    assert abs(written["1"] - written["2"]).max() > 1e-4


def test_adapt_refines_both_vectors_of_a_conversion(tiny_checkpoint, mels):
    _, src, tgt = mels
    conv = load(tiny_checkpoint, vocoder="griffinlim", adapt_steps=10, strength=1.5)
    with torch.inference_mode():
        v_s, v_t = conv.voice(src), conv.voice(tgt)
        assert (v_t - conv.model.embed_speaker(tgt)[0]).abs().max() > 1e-4       # it moved
        torch.testing.assert_close(v_t, conv.model.fit_speaker(tgt, 10)[0])
        expected = decode_with(conv, src, v_s + 1.5 * (v_t - v_s))             # the source's own vector refined too
        torch.testing.assert_close(conv.convert_mel(src, v_t), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [-1, 1.5, "many", MAX_ADAPT_STEPS + 1, True])
def test_bad_adapt_is_refused(tiny_checkpoint, bad):
    with pytest.raises(ValueError, match="adapt"):
        load(tiny_checkpoint, vocoder="griffinlim", adapt_steps=bad)


@pytest.mark.parametrize("command", ["convert", "swap", "batch"])
def test_adapt_option_changes_the_output_and_a_bad_one_is_one_line(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys,
                                                                  command):
    written = {}
    for n in ("0", "10", "-1"):
        out = tmp_path / f"out{n}"
        argv = {"convert": ["convert", str(wav_a), str(wav_b), "-o", str(out / "a.wav")],
                "swap": ["swap", str(wav_a), str(wav_b), "-o", str(out)],
                "batch": ["batch", "--sources", str(wav_a.parent), "--target", str(wav_b), "-o", str(out),
                          "--workers", "1", "--threads", "1"]}[command]
        capsys.readouterr()
        code = main(argv + ["--model", str(tiny_checkpoint), "--vocoder", "griffinlim", "--adapt", n])
        if n == "-1":
            err = capsys.readouterr().err.strip()
            assert code == 2 and len(err.splitlines()) == 1 and "--adapt -1: give a whole number" in err, err
            assert not out.exists() or not any(out.rglob("*.wav"))
        else:
            assert code == 0
            written[n], _ = sf.read(str(sorted(out.rglob("*.wav"))[0]))
    assert written["0"].shape == written["10"].shape and abs(written["0"] - written["10"]).max() > 1e-4


# -- a model that reads the source's pitch (ModelConfig.pitch_channels, vc.pitch) ----------------
@pytest.mark.parametrize("command", ["convert", "swap", "batch"])
def test_a_pitch_model_hears_the_sources_pitch_in_every_command(tmp_path, pitch_checkpoint, wav_a, wav_b,
                                                                monkeypatch, command):
    """Each command gives the model the source's vc.pitch features; other pitch, other output."""
    import shutil
    from vc.convert import Converter
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(wav_a, sources / wav_a.name)
    real_pitch, written = Converter.pitch, {}
    for name, flip in (("real", 1.0), ("flipped", -1.0)):
        monkeypatch.setattr(Converter, "pitch", lambda self, wav, f=flip: None if (p := real_pitch(self, wav)) is None
                            else p * torch.tensor([[f], [1.0]]))
        out = tmp_path / name
        argv = {"convert": ["convert", str(wav_a), str(wav_b), "-o", str(out / "a.wav")],
                "swap": ["swap", str(wav_a), str(wav_b), "-o", str(out)],
                "batch": ["batch", "--sources", str(sources), "--target", str(wav_b), "-o", str(out),
                          "--workers", "1", "--threads", "1"]}[command]
        assert main(argv + ["--model", str(pitch_checkpoint), "--vocoder", "griffinlim"]) == 0
        written[name] = {p.relative_to(out): sf.read(str(p))[0] for p in sorted(out.rglob("*.wav"))}
    assert written["real"].keys() == written["flipped"].keys() and written["real"]
    for key, wav in written["real"].items():
        assert abs(wav - written["flipped"][key]).max() > 1e-4, key


def test_a_pitch_model_adapts_the_speaker_vectors_with_the_clips_pitch(pitch_checkpoint, wav_a, wav_b, tmp_path):
    conv = load(pitch_checkpoint, vocoder="griffinlim", adapt_steps=5)
    wav = conv.load(wav_b)
    mel, pitch = conv.mel(wav), conv.pitch(wav)
    with torch.inference_mode():              # as the Converter calls it
        fitted = conv.voice(mel, pitch)
        torch.testing.assert_close(conv.speaker(wav_b), fitted)
        assert (fitted - conv.voice(mel, pitch * torch.tensor([[-1.0], [1.0]]))).abs().max() > 1e-6
    assert main(["swap", str(wav_a), str(wav_b), "-o", str(tmp_path / "out"), "--model", str(pitch_checkpoint),
                 "--vocoder", "griffinlim", "--adapt", "5"]) == 0
    assert len(list((tmp_path / "out").glob("*.wav"))) == 2


def test_a_pitch_model_refuses_to_decode_without_pitch_and_to_stream(pitch_checkpoint, wav_a, wav_b):
    conv = load(pitch_checkpoint, vocoder="griffinlim")
    mel = conv.mel(conv.load(wav_a))
    with torch.inference_mode():
        code = conv.model.encode(mel)                       # the codes need no pitch ...
        with pytest.raises(ValueError, match="reads the source's pitch"):
            conv.model.decode(code)                         # ... their decoding does
        with pytest.raises(ValueError, match="pitch of shape"):
            conv.model.encode(mel, torch.zeros(2, mel.shape[1] + 1))
    with pytest.raises(ValueError, match="live conversion cannot use a model that reads pitch"):
        next(conv.stream([conv.load(wav_a)], wav_b))


def test_the_web_pages_swap_of_a_pitch_model_is_the_converters(pitch_checkpoint, wav_a, wav_b):
    from vc.demo import swap_clips
    conv = load(pitch_checkpoint, vocoder="griffinlim", strength=1.25)
    ab, ba, _ = swap_clips(conv, wav_a, wav_b)
    expected_ab, expected_ba = conv.swap(wav_a, wav_b)
    assert abs(ab - expected_ab).max() < 1e-4 and abs(ba - expected_ba).max() < 1e-4


# -- a model with frame attention (ModelConfig.frame_attention, vc.frame_attention.FrameAttention) ------
@pytest.mark.parametrize("command", ["convert", "swap", "batch"])
def test_a_frame_attention_model_recalls_the_targets_frames_in_every_command(tmp_path, recall_checkpoints,
                                                                            wav_a, wav_b, command):
    """With matching off, each command still gives the model the target's speech frames: its
    opened gate changes what is written (a shut one decodes as the plain model)."""
    import shutil
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(wav_a, sources / wav_a.name)
    written = {}
    for name, path in recall_checkpoints.items():
        out = tmp_path / name
        argv = {"convert": ["convert", str(wav_a), str(wav_b), "-o", str(out / "a.wav")],
                "swap": ["swap", str(wav_a), str(wav_b), "-o", str(out)],
                "batch": ["batch", "--sources", str(sources), "--target", str(wav_b), "-o", str(out),
                          "--workers", "1", "--threads", "1"]}[command]
        assert main(argv + ["--model", str(path), "--vocoder", "griffinlim", "--match", "0",
                            "--match-high", "0"]) == 0
        written[name] = {p.relative_to(out): sf.read(str(p))[0] for p in sorted(out.rglob("*.wav"))}
    assert written["open"].keys() == written["shut"].keys() and written["open"]
    for key, wav in written["open"].items():
        assert abs(wav - written["shut"][key]).max() > 1e-4, key


def test_the_web_page_and_the_stream_of_a_frame_attention_model_recall_the_target(recall_checkpoints,
                                                                                  wav_a, wav_b):
    """The page's swap is the Converter's; live conversion recalls the target's frames too."""
    import numpy as np
    from vc.demo import swap_clips
    streamed = {}
    for name, path in recall_checkpoints.items():
        conv = load(path, vocoder="griffinlim", strength=1.25, match=0, match_high=0)
        ab, ba, _ = swap_clips(conv, wav_a, wav_b)
        expected_ab, expected_ba = conv.swap(wav_a, wav_b)
        assert abs(ab - expected_ab).max() < 1e-4 and abs(ba - expected_ba).max() < 1e-4
        wav = conv.load(wav_a)
        streamed[name] = np.concatenate(list(conv.stream(np.array_split(wav, 8), wav_b)))
    assert abs(streamed["open"] - streamed["shut"]).max() > 1e-4
