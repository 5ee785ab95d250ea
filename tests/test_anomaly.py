"""vc.anomaly: the autoencoder as a not-speech detector (issue 12), and the CLI's one-line warning."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import vc.anomaly as anomaly
from vc.checkpoint import load_model
from vc.cli import main
from vc.convert import DEFAULT_MODEL, long_mel
from vc.audio import load_audio


def white_noise(path, seconds=2.0, sr=22050):
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal(int(seconds * sr)), sr)
    return path


def test_noise_scores_higher_than_speech_with_the_shipped_model(tmp_path, example_clips):
    model, cfg, _ = load_model(DEFAULT_MODEL, "cpu")
    cal = anomaly.load_calibration(DEFAULT_MODEL)
    assert cal is not None, "vc/pretrained/anomaly.json has no entry for default.pt (scripts/calibrate_anomaly.py)"

    def score(path):
        p = anomaly.parts(model, long_mel(torch.from_numpy(load_audio(path, cfg.sample_rate)), cfg), cal["speaker_stats"])
        return p, anomaly.combine(p, cal["thresholds"])

    (noise_parts, noise), (clip_parts, clip) = score(white_noise(tmp_path / "n.wav")), score(example_clips[0])
    assert noise_parts["recon"] > clip_parts["recon"]          # the lecture's score alone
    assert noise_parts["ratio"] > clip_parts["ratio"]
    assert noise > 1 > clip


def test_speaker_part_is_far_for_a_vector_no_voice_has():
    stats = {"mean": [0.0] * 4, "std": [1.0, 1.0, 2.0, 2.0]}
    assert anomaly.speaker_distance(torch.zeros(4), stats) == 0
    assert anomaly.speaker_distance(torch.tensor([1.0, 1.0, 2.0, 2.0]), stats) == pytest.approx(1.0)
    assert anomaly.speaker_distance(torch.tensor([10.0, 0, 0, 0]), stats) == pytest.approx(25.0)
    # the score is the largest part in units of its own threshold
    assert anomaly.combine({"ratio": 2.0, "speaker": 30.0}, {"ratio": 4.0, "speaker": 10.0}) == pytest.approx(3.0)


def _convert(args, capsys):
    assert main(["convert", *map(str, args), "--vocoder", "griffinlim"]) == 0
    return capsys.readouterr().err


def test_cli_warns_for_noise_not_for_speech(tmp_path, example_clips, capsys):
    noise = white_noise(tmp_path / "noise.wav")
    err = _convert([noise, example_clips[1], "-o", tmp_path / "o.wav"], capsys)
    lines = [x for x in err.splitlines() if "does not sound like clean speech" in x]
    assert len(lines) == 1 and lines[0].startswith(f"{noise} does not sound like clean speech (score ")
    assert "the conversion may fail" in lines[0] and (tmp_path / "o.wav").is_file()   # still converts
    err = _convert([example_clips[0], example_clips[1], "-o", tmp_path / "o2.wav"], capsys)
    assert "clean speech" not in err


def test_swap_warns_too(tmp_path, example_clips, capsys):
    noise = white_noise(tmp_path / "noise.wav")
    assert main(["swap", str(example_clips[0]), str(noise), "-o", str(tmp_path / "out"),
                 "--vocoder", "griffinlim"]) == 0
    err = capsys.readouterr().err
    assert err.count("does not sound like clean speech") == 1 and str(noise) in err


def test_threshold_of_another_model_is_ignored(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    noise = white_noise(tmp_path / "noise.wav")
    entry = {"thresholds": {"ratio": 1e-6}, "speaker_stats": {"mean": [0.0], "std": [1.0]}}   # flags everything
    table = tmp_path / "anomaly.json"
    monkeypatch.setattr(anomaly, "ANOMALY_FILE", table)
    table.write_text(json.dumps({"0" * 40: entry}))                 # another model's calibration
    args = [noise, noise, "-o", tmp_path / "o.wav", "--model", tiny_checkpoint]
    assert "clean speech" not in _convert(args, capsys)
    table.write_text(json.dumps({anomaly.file_sha1(tiny_checkpoint): entry}))   # this model's
    assert "does not sound like clean speech" in _convert(args, capsys)        # one line, once per file
    assert anomaly.load_calibration(tiny_checkpoint, tmp_path / "missing.json") is None
    table.write_text(json.dumps({anomaly.file_sha1(tiny_checkpoint): {"threshold": 1.5, "recon": 0.5, "ratio": 1.4}}))
    assert anomaly.load_calibration(tiny_checkpoint, table) is None                # an older format: ignored


def test_clipped_speech_is_caught_by_its_samples(tmp_path, example_clips, capsys):
    wav, sr = sf.read(str(example_clips[0]), dtype="float32")
    assert anomaly.clipped_share(wav) < anomaly.CLIP_SHARE           # the clean clip
    clipped = np.clip(20 * wav / np.abs(wav).max(), -1, 1)
    assert anomaly.clipped_share(clipped) > 0.1
    sf.write(str(tmp_path / "clipped.wav"), clipped, sr, subtype="FLOAT")
    err = _convert([tmp_path / "clipped.wav", example_clips[1], "-o", tmp_path / "o.wav"], capsys)
    lines = [x for x in err.splitlines() if "sounds clipped" in x]
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'clipped.wav'} sounds clipped (")
    assert (tmp_path / "o.wav").is_file()


def test_calibration_thresholds_flag_one_percent_of_calibration_speech():
    """scripts/calibrate_anomaly.py: one percentile for every part, the lowest that flags at most
    1 % of calibration speech by the largest part; two independent parts need a higher one."""
    from conftest import load_script
    cal_script = load_script("calibrate_anomaly")
    rng = np.random.default_rng(0)
    calib = [{"ratio": r, "speaker": s} for r, s in zip(rng.lognormal(0, 0.3, 1000), rng.lognormal(0, 0.5, 1000))]
    one = cal_script.thresholds(calib, ("ratio",))
    assert one["ratio"] == pytest.approx(np.percentile([c["ratio"] for c in calib], 99))
    both = cal_script.thresholds(calib, ("ratio", "speaker"))
    assert both["ratio"] > one["ratio"]
    assert np.mean([anomaly.combine(c, both) > 1 for c in calib]) <= 0.01


def test_a_model_that_reads_pitch_is_checked_with_the_clips_pitch(tmp_path, pitch_checkpoint, example_clips,
                                                                   monkeypatch, capsys):
    from vc.convert import load
    from vc.page import not_speech
    conv = load(pitch_checkpoint, vocoder="griffinlim")
    wav = conv.load(example_clips[0])
    mel, pitch = conv.mel(wav), conv.pitch(wav)
    with pytest.raises(ValueError, match="reads the source's pitch"):
        anomaly.parts(conv.model, mel)
    flipped = pitch * torch.tensor([[-1.0], [1.0]])
    assert anomaly.parts(conv.model, mel, pitch=pitch)["recon"] != anomaly.parts(conv.model, mel, pitch=flipped)["recon"]
    entry = {"thresholds": {"ratio": 1e-6}, "speaker_stats": {"mean": [0.0], "std": [1.0]}}   # flags everything
    table = tmp_path / "anomaly.json"
    monkeypatch.setattr(anomaly, "ANOMALY_FILE", table)
    table.write_text(json.dumps({anomaly.file_sha1(pitch_checkpoint): entry}))
    assert "does not sound like clean speech" in _convert([example_clips[0], example_clips[1], "-o", tmp_path / "o.wav",
                                                           "--model", pitch_checkpoint], capsys)
    assert "does not sound like clean speech" in not_speech(conv, pitch_checkpoint, mel, "Clip A", pitch=pitch)
