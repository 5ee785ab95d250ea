"""scripts/probe_pitch.py: the pitch a model reads changes its reconstruction; none changes nothing."""
import pytest
import torch

from conftest import load_script, write_wav
from vc.checkpoint import load_model


def test_each_variant_changes_a_pitch_readers_reconstruction(pitch_checkpoint, tmp_path):
    probe = load_script("probe_pitch")
    manifest = tmp_path / "manifest.tsv"
    rows = ["path\tspeaker\tsplit"]
    for i in range(3):
        write_wav(tmp_path / f"u{i}.wav", 1.5, 16000, f0=100 + 40 * i, seed=i)
        rows.append(f"u{i}.wav\ts{i}\tval")
    manifest.write_text("\n".join(rows) + "\n")
    res = probe.main(["--model", str(pitch_checkpoint), "--data", str(manifest), "--clips", "3"])
    assert all(len(v) == 3 for v in res.values())
    real = res["real pitch"]
    for name in ("none (all unvoiced)", "melody inverted"):
        assert any(abs(a - b) > 1e-4 for a, b in zip(res[name], real)), name
    model, mel_cfg, _ = load_model(pitch_checkpoint, "cpu")
    for layer in model.decoder.pitch_in:                           # a decoder deaf to pitch ...
        torch.nn.init.zeros_(layer.weight)
    deaf = probe.probe(model.eval(), mel_cfg, [str(tmp_path / "u0.wav")])
    assert len({round(v[0], 6) for v in deaf.values()}) == 1      # ... rebuilds alike whatever it is given


def test_refuses_a_model_without_pitch(tiny_checkpoint, tmp_path):
    probe = load_script("probe_pitch")
    with pytest.raises(SystemExit, match="reads no pitch"):
        probe.main(["--model", str(tiny_checkpoint), "--data", str(tmp_path)])
