"""vc.features computes exactly what HiFi-GAN V1 was trained on: copy-synthesis of real speech
(analyse, vocode, analyse again) must land close to the original log-mel."""
import numpy as np
import torch

from vc import features
from vc.audio import load_audio
from vc.features import MelConfig, mel_spectrogram, mel_to_linear
from vc.vocoder import get_vocoder

# Mean absolute log-mel error of HiFi-GAN V1 universal copy-synthesis on these clips measured
# 0.20-0.25 (natural-log units). Wrong features (other hop, no log, other mel range, other
# padding) give far larger errors, so 0.35 separates right from wrong with a margin.
COPY_SYNTHESIS_TOLERANCE = 0.35


def test_shapes_and_batching():
    cfg = MelConfig()
    wav = torch.randn(2, 22050) * 0.1
    mel = mel_spectrogram(wav, cfg)
    assert mel.shape == (2, 80, 22050 // 256)
    assert torch.allclose(mel[1], mel_spectrogram(wav[1], cfg), atol=1e-5)
    assert float(mel.min()) >= np.log(cfg.log_floor) - 1e-6


def test_copy_synthesis_through_hifigan_matches(example_clips):
    voc = get_vocoder("hifigan")
    for clip in example_clips[:2]:
        wav = load_audio(clip)[: 22050 * 3]
        mel = mel_spectrogram(wav)
        again = mel_spectrogram(voc(mel[None])[0])
        n = min(mel.shape[1], again.shape[1])
        err = (mel[:, :n] - again[:, :n]).abs().mean().item()
        assert err < COPY_SYNTHESIS_TOLERANCE, f"{clip.name}: copy-synthesis error {err:.3f}"


def test_features_differ_from_a_wrong_analysis(example_clips):
    """The tolerance above can fail: a mel computed with another hop is far from the right one."""
    wav = load_audio(example_clips[0])[: 22050 * 2]
    right = mel_spectrogram(wav)
    wrong = mel_spectrogram(wav, MelConfig(f_max=11025.0))
    assert (right - wrong).abs().mean().item() > COPY_SYNTHESIS_TOLERANCE


def test_pseudo_inverse_is_non_negative():
    mel = mel_spectrogram(torch.randn(1, 8000) * 0.1)
    assert float(mel_to_linear(mel).min()) >= 0


def test_a_mel_is_differentiable_after_one_made_in_inference_mode():
    """The filter bank and window are cached: made first inside inference mode (as inference does),
    they must still serve a mel loss that backpropagates (vc/vocoder_gan.py)."""
    features._mel_basis.cache_clear()
    features._window.cache_clear()
    wav = torch.randn(2, 4096) * 0.1
    with torch.inference_mode():
        mel_spectrogram(wav)
    wav.requires_grad_(True)
    mel_spectrogram(wav).mean().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0
