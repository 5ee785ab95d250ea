"""vc.match: which frames count as speech, the nearest frames, the envelope, envelope matching
on every path that converts (Converter, the commands, vc batch, vc evaluate, the page), and
high-band matching."""
import pytest
import soundfile as sf
import torch

from conftest import tiny_model, write_wav
from vc import match
from vc.checkpoint import save_checkpoint
from vc.cli import main
from vc.convert import load
from vc.features import MelConfig


def test_speech_frames_drop_the_quiet_ones():
    mel = torch.full((80, 6), -2.0)
    mel[:, 2] = -12.0                                  # 87 dB below the others (log magnitude)
    mel[:, 4] = -5.0                                   # 26 dB below: kept
    kept = match.speech_frames(mel)
    assert kept.shape == (80, 5) and not (kept == -12.0).any()


def test_each_frame_becomes_the_mean_of_its_nearest_bank_frames():
    bank = torch.tensor([[0.0, 1.0, 10.0, 11.0]])      # two clusters on one axis
    query = torch.tensor([[0.2, 10.4]])
    assert torch.allclose(match.nearest_frames(query, bank, 1), torch.tensor([[0.0, 10.0]]))
    assert torch.allclose(match.nearest_frames(query, bank, 2), torch.tensor([[0.5, 10.5]]))
    assert match.nearest_frames(query, bank, 9).shape == (1, 2)     # k capped at the bank's size


def test_the_envelope_keeps_the_smooth_shape_and_drops_the_ripple():
    bands = torch.arange(80, dtype=torch.float32)[:, None]
    smooth = -5 + torch.sin(bands / 80 * 3.1416)                   # a broad formant-like hump
    ripple = 0.5 * torch.cos(bands * 3.1416 / 2)                    # a period of 4 bands: harmonics
    env = match.envelope(smooth + ripple)
    assert (env - smooth).abs().mean() < 0.05 < (smooth + ripple - smooth).abs().mean()
    assert torch.allclose(match.envelope(smooth + ripple, n=80), smooth + ripple, atol=1e-4)   # all kept


def test_long_queries_are_matched_in_pieces_with_the_same_result(monkeypatch):
    g = torch.Generator().manual_seed(0)
    query, bank = torch.randn(80, 50, generator=g), torch.randn(80, 30, generator=g)
    whole = match.nearest_frames(query, bank, 3)
    monkeypatch.setattr(match, "MAX_DISTANCES", 60)              # two query frames per piece
    torch.testing.assert_close(match.nearest_frames(query, bank, 3), whole)


def test_matching_moves_only_the_envelope_toward_the_bank():
    bands = torch.arange(80, dtype=torch.float32)[:, None]
    ripple = 0.5 * torch.cos(bands * 3.1416 / 2).expand(80, 10)    # the conversion's harmonics
    mel = -6 + ripple
    bank = torch.full((80, 5), -3.0) + torch.linspace(0, 1, 5)    # real frames, 3 log units louder
    assert match.match_envelope(mel, bank, 0.0) is mel
    out = match.match_envelope(mel, bank, 0.5)
    torch.testing.assert_close(match.envelope(out), match.envelope(mel) + 0.5 * (match.envelope(
        match.nearest_frames(mel, bank)) - match.envelope(mel)))
    torch.testing.assert_close(out - match.envelope(out), mel - match.envelope(mel))      # ripple kept
    nearest4 = -3 + (0 + 0.25 + 0.5 + 0.75) / 4                    # the 4 quietest bank frames are nearest
    assert (out.mean() - mel.mean()).item() == pytest.approx(0.5 * (nearest4 - -6), abs=1e-3)
    torch.testing.assert_close(match.match_envelope(mel, bank[:, :0], 0.5), mel)   # no speech frames: as it was


def test_smoothing_averages_the_shift_over_time_and_keeps_a_steady_one():
    """smooth N: the envelope shift is a moving average over N frames: a shift that flips from frame
    to frame is damped, one that stays the same is kept; smooth 1 is the plain form."""
    mel = torch.full((80, 12), -6.0)
    bank = torch.full((80, 1), -3.0)                                # every frame's match: 3 louder
    torch.testing.assert_close(match.match_envelope(mel, bank, 0.5, smooth=5), match.match_envelope(mel, bank, 0.5))
    mel[:, ::2] = -4.0                                             # frames alternate -4 and -6
    bank = torch.tensor([-2.5, -6.5]).expand(80, 2)                 # nearest: -2.5 and -6.5
    plain = match.match_envelope(mel, bank, 1.0, k=1) - mel         # shifts +1.5, -0.5, +1.5, ...
    smoothed = match.match_envelope(mel, bank, 1.0, k=1, smooth=5) - mel
    torch.testing.assert_close(plain[:, :4], torch.tensor([1.5, -0.5, 1.5, -0.5]).expand(80, 4))
    step = lambda shift: shift[:, 2:-2].diff().abs().max()          # noqa: E731  (full windows only)
    assert step(plain) == pytest.approx(2.0, abs=1e-4) and step(smoothed) == pytest.approx(0.4, abs=1e-4)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "some"])
def test_bad_match_weight_is_refused(tiny_checkpoint, bad):
    with pytest.raises(ValueError, match="match"):
        load(tiny_checkpoint, vocoder="griffinlim", match=bad)


def test_a_model_carries_its_default_match_and_load_overrides_it(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_model(), MelConfig(), meta={"match": 0.25})
    assert load(path, vocoder="griffinlim").match == 0.25
    assert load(path, vocoder="griffinlim", match=0.0).match == 0.0
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, tiny_model(), MelConfig(), meta={})
    assert load(plain, vocoder="griffinlim").match == 0.0


def test_convert_and_swap_match_to_the_targets_speech_frames(tiny_checkpoint, wav_a, wav_b):
    plain = load(tiny_checkpoint, vocoder="griffinlim")
    conv = load(tiny_checkpoint, vocoder="griffinlim", match=0.5)
    with torch.inference_mode():
        src, tgt = (conv.mel(conv.load(str(w))) for w in (wav_a, wav_b))
        voice = conv.target(str(wav_b))
        assert plain.target(str(wav_b)).frames is None
        torch.testing.assert_close(voice.frames, match.speech_frames(tgt))
        torch.testing.assert_close(voice.vector, plain.speaker(str(wav_b)))
        expected = match.match_envelope(plain.convert_mel(src, voice.vector), voice.frames, 0.5)
        torch.testing.assert_close(conv.convert_mel(src, voice.vector, frames=voice.frames), expected)
        two = conv.target(str(wav_b), str(wav_a))                 # several clips: all their frames
        assert two.frames.shape[1] == voice.frames.shape[1] + match.speech_frames(src).shape[1]
    ab, ba = conv.swap(str(wav_a), str(wav_b))
    ab0, ba0 = plain.swap(str(wav_a), str(wav_b))
    assert ab.shape == ab0.shape and abs(ab - ab0).max() > 1e-4 and abs(ba - ba0).max() > 1e-4


def test_page_swap_matches_as_the_command_line_does(tiny_checkpoint, wav_a, wav_b):
    import numpy as np
    from vc import demo
    conv = load(tiny_checkpoint, vocoder="griffinlim", strength=1.5, match=0.5)
    ab, ba, _ = demo.swap_clips(conv, str(wav_a), str(wav_b))
    ab2, ba2 = conv.swap(str(wav_a), str(wav_b))
    np.testing.assert_allclose(ab, ab2, atol=1e-4)
    np.testing.assert_allclose(ba, ba2, atol=1e-4)


@pytest.mark.parametrize("command", ["convert", "swap", "batch"])
def test_match_option_changes_the_output_and_a_bad_one_is_one_line(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys,
                                                                  command):
    src = write_wav(tmp_path / "in" / "x.wav", 1.0, 16000, f0=150, seed=3)
    written = {}
    for w in ("0", "0.5", "2"):
        out = tmp_path / f"out{w}"
        argv = {"convert": ["convert", str(src), str(wav_b), "-o", str(out / "a.wav")],
                "swap": ["swap", str(src), str(wav_b), "-o", str(out)],
                "batch": ["batch", "--sources", str(src.parent), "--target", str(wav_b), "-o", str(out),
                          "--workers", "1", "--threads", "1"]}[command]
        capsys.readouterr()
        code = main(argv + ["--model", str(tiny_checkpoint), "--vocoder", "griffinlim", "--match", w])
        if w == "2":
            err = capsys.readouterr().err.strip()
            assert code == 2 and len(err.splitlines()) == 1 and "--match 2: give a number from 0 (off) to 1" in err, err
            assert not out.exists() or not any(out.rglob("*.wav"))
        else:
            assert code == 0
            written[w], _ = sf.read(str(sorted(out.rglob("*.wav"))[0]))
    assert written["0"].shape == written["0.5"].shape and abs(written["0"] - written["0.5"]).max() > 1e-4


def test_batch_with_a_pool_matches_as_one_worker_does(tmp_path, tiny_checkpoint, wav_b):
    for name, seed in (("x", 3), ("y", 4)):
        write_wav(tmp_path / "in" / f"{name}.wav", 1.0, 16000, f0=150, seed=seed)
    written = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        assert main(["batch", "--sources", str(tmp_path / "in"), "--target", str(wav_b), "-o", str(out),
                     "--model", str(tiny_checkpoint), "--vocoder", "griffinlim", "--workers", workers,
                     "--threads", "1", "--match", "0.5"]) == 0
        written[workers] = [sf.read(str(out / f"{n}.wav"))[0] for n in ("x", "y")]
    for one, pooled in zip(*written.values()):
        assert abs(one - pooled).max() < 1e-4


def test_export_stores_the_match_weight(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "m.pt"
    assert main(["export", str(tiny_checkpoint), "-o", str(out), "--match", "0.25"]) == 0
    assert load(out, vocoder="griffinlim").match == 0.25
    assert main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "bad.pt"), "--match", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--match 3" in err[0]


def test_live_conversion_matches_too(tiny_checkpoint, example_clips):
    """vc.stream: the target's speech frames go to Live (also from the page's Live tab), and the
    output changes with the weight while its length does not."""
    import numpy as np
    from vc.audio import load_audio
    from vc.stream import Live
    outs = {}
    for w in (0.0, 0.5):
        conv = load(tiny_checkpoint, vocoder="griffinlim", match=w)
        wav = load_audio(example_clips[0], conv.sample_rate)[: 2 * conv.sample_rate]
        pieces = [wav[i: i + 5512] for i in range(0, wav.size, 5512)]
        outs[w] = np.concatenate(list(conv.stream(pieces, example_clips[1])))
        voice = conv.target(example_clips[1])
        live = Live(conv, voice.vector, voice.frames)
        assert (live.frames is None) == (w == 0.0)
    assert outs[0.0].shape == outs[0.5].shape and abs(outs[0.0] - outs[0.5]).max() > 1e-4


def high_band_case():
    """Frames 0-3 sonorant (low bands 4 nats above the high ones), 4-5 a fricative (the high bands
    louder); a bank of two real frames, the first near the sonorant frames."""
    mel = torch.full((80, 6), -8.0)
    mel[:40, :4] = -4.0
    mel[40:, 4:] = -3.0
    bank = torch.stack([torch.full((80,), -4.5), torch.full((80,), -1.0)], 1)
    bank[40:, 0] = -6.0                                            # its high bands: 2 nats above the frames'
    return mel, bank


def test_high_band_matching_moves_the_high_bands_of_sonorant_frames_only():
    mel, bank = high_band_case()
    assert match.match_high(mel, bank, 0.0) is mel
    torch.testing.assert_close(match.match_high(mel, bank[:, :0], 0.5), mel)      # no speech frames
    out = match.match_high(mel, bank, 0.5, k=1)
    torch.testing.assert_close(out[:40], mel[:40])                               # below the ramp: as it was
    torch.testing.assert_close(out[:, 4:], mel[:, 4:])                           # the fricative: as it was
    near = match.nearest_frames(mel, bank, 1)
    torch.testing.assert_close(out[50:, :4], mel[50:, :4] + 0.5 * (near[50:, :4] - mel[50:, :4]))
    assert (out[50:, :4] - mel[50:, :4]).mean().item() == pytest.approx(0.5 * 2.0)  # half way to its match
    ramp = (out[40:50, 0] - mel[40:50, 0]) / (out[50, 0] - mel[50, 0])
    torch.testing.assert_close(ramp, torch.arange(10) / 10.0)                   # linear up to band 50


def test_sonorance_is_one_for_vowels_and_zero_for_fricatives_and_silence():
    mel, _ = high_band_case()
    torch.testing.assert_close(match.sonorance(mel), torch.tensor([1.0, 1, 1, 1, 0, 0]))
    assert match.sonorance(torch.full((80, 3), -11.0)).eq(0).all()                # flat silence
    half = torch.full((80, 1), -8.0)
    half[:40] = -8.0 + match.SONORANT_NATS / 2
    assert match.sonorance(half).item() == pytest.approx(0.5)


def test_a_model_carries_its_default_high_band_matching_and_the_converter_applies_it(tmp_path, wav_a, wav_b):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_model(), MelConfig(), meta={"match_high": 0.5})
    conv = load(path, vocoder="griffinlim")
    assert conv.match == 0.0 and conv.match_high == 0.5
    plain = load(path, vocoder="griffinlim", match_high=0.0)
    assert plain.match_high == 0.0 and plain.target(str(wav_b)).frames is None
    with torch.inference_mode():
        src = conv.mel(conv.load(str(wav_a)))
        voice = conv.target(str(wav_b))                               # frames kept for high-band matching alone
        torch.testing.assert_close(voice.frames, match.speech_frames(conv.mel(conv.load(str(wav_b)))))
        expected = match.match_high(plain.convert_mel(src, voice.vector), voice.frames, 0.5)
        torch.testing.assert_close(conv.convert_mel(src, voice.vector, frames=voice.frames), expected)
        both = load(path, vocoder="griffinlim", match=0.25)           # envelope first, then the high bands
        env = match.match_envelope(plain.convert_mel(src, voice.vector), voice.frames, 0.25)
        torch.testing.assert_close(both.convert_mel(src, voice.vector, frames=voice.frames),
                                   match.match_high(env, voice.frames, 0.5))
    with pytest.raises(ValueError, match="match-high 2: give a number from 0"):
        load(path, vocoder="griffinlim", match_high=2)


def test_match_high_option_changes_the_output_and_export_stores_it(tmp_path, tiny_checkpoint, wav_a, wav_b, capsys):
    written = {}
    for w in ("0", "1"):
        out = tmp_path / f"out{w}" / "a.wav"
        assert main(["convert", str(wav_a), str(wav_b), "-o", str(out), "--model", str(tiny_checkpoint),
                     "--vocoder", "griffinlim", "--match-high", w]) == 0
        written[w], _ = sf.read(str(out))
    assert written["0"].shape == written["1"].shape and abs(written["0"] - written["1"]).max() > 1e-4
    capsys.readouterr()
    assert main(["swap", str(wav_a), str(wav_b), "-o", str(tmp_path / "bad"), "--model", str(tiny_checkpoint),
                 "--vocoder", "griffinlim", "--match-high", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--match-high -1: give a number from 0 (off) to 1" in err[0], err
    stored = tmp_path / "m.pt"
    assert main(["export", str(tiny_checkpoint), "-o", str(stored), "--match-high", "0.5"]) == 0
    assert load(stored, vocoder="griffinlim").match_high == 0.5
