"""scripts/probe_frame_attention.py: it reads the gate the decoder opened and how far the recall
moved the output, and refuses a model without frame attention."""
import pytest
import torch
from conftest import TINY, load_script, tiny_model

from vc.model import ModelConfig, VoiceConverter


@pytest.fixture(scope="module")
def probe():
    return load_script("probe_frame_attention")


def test_gate_and_shift_are_the_decoders(probe):
    torch.manual_seed(0)
    model = VoiceConverter(ModelConfig(**TINY, frame_attention=True, frame_attention_band=40)).eval()
    source, target = torch.randn(80, 90) - 5, torch.randn(80, 120) - 5
    gate, moved = probe.recall(model, source, target)
    assert gate.shape == moved.shape == source.shape
    assert gate.abs().max() == 0 and moved.abs().max() < 1e-5        # a shut gate moves nothing
    torch.nn.init.normal_(model.decoder.attention.gate.weight, std=0.5)
    gate, moved = probe.recall(model, source, target)
    assert gate[:40].abs().max() == 0 and gate[40:].abs().mean() > 0.01
    assert moved[:40].abs().max() < 1e-5 and moved[40:].abs().mean() > 1e-3


def test_a_model_without_frame_attention_is_refused(probe):
    with pytest.raises(ValueError, match="no frame attention"):
        probe.recall(tiny_model(), torch.randn(80, 50) - 5, torch.randn(80, 50) - 5)
