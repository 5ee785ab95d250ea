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
