"""The shipped default model: loads offline from the package and converts a dev-speaker clip."""
import numpy as np
import pytest
import torch

import vc
from vc.convert import DEFAULT_MODEL
from vc.features import mel_spectrogram

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no default model installed")


def test_default_model_is_small_and_loads():
    assert DEFAULT_MODEL.stat().st_size < 40e6
    conv = vc.load(vocoder="griffinlim")
    assert "train" not in torch.load(DEFAULT_MODEL, weights_only=True)   # inference-only file
    assert conv.meta.get("step", 0) > 0 or sum(conv.meta.get("steps", [])) > 0    # trained (or an average)


@pytest.mark.parametrize("vocoder", ["griffinlim", "hifigan"])
def test_converts_a_dev_clip(example_clips, vocoder):
    conv = vc.load(vocoder=vocoder)
    src, tgt = example_clips[0], example_clips[1]
    out = conv.convert(src, tgt)
    assert out.dtype == np.float32 and np.isfinite(out).all() and np.abs(out).max() > 0.01
    assert abs(out.size - conv.load(src).size) <= 256


def test_conversion_moves_the_voice_towards_the_target(example_clips):
    """Re-encoded by the model's own speaker encoder, A-in-B's-voice must sit nearer to B than to A
    (a model that ignored the speaker vector would fail this)."""
    conv = vc.load(vocoder="hifigan")
    a, b = example_clips[0], example_clips[1]
    ab, _ = conv.swap(a, b)
    emb = lambda w: conv.model.embed_speaker(mel_spectrogram(w))[0]   # noqa: E731
    with torch.no_grad():
        ea, eb, eab = emb(conv.load(a)), emb(conv.load(b)), emb(ab)
    cos = torch.nn.functional.cosine_similarity
    assert cos(eab, eb, dim=0) > cos(eab, ea, dim=0)
