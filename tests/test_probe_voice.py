"""scripts/probe_voice.py: its blur keeps the shape and the mean level, and lowers the contrast
between neighbouring mel bins that the probe reports (a harmonic comb loses it, flat spectra have none)."""
import pytest
import torch
from conftest import load_script


@pytest.fixture(scope="module")
def probe():
    pytest.importorskip("soxr")
    return load_script("probe_voice")


def comb(n_mels=80, frames=50):
    """A log-mel with sharp peaks every 4 bins (harmonics) on a constant floor."""
    mel = torch.full((n_mels, frames), -6.0)
    mel[::4] = -1.0
    return mel


@pytest.mark.parametrize("axis", [0, 1])
def test_blur_keeps_shape_and_level(probe, axis):
    mel = comb() + torch.randn(80, 50) * 0.1
    out = probe.blur(mel, 3, axis)
    assert out.shape == mel.shape
    assert abs(out.mean().item() - mel.mean().item()) < 0.05


def test_mel_blur_lowers_contrast_time_blur_does_not(probe):
    mel, speech = comb(), torch.ones(50, dtype=torch.bool)
    sharp = probe.contrast(mel, speech)
    assert 2.4 < sharp < 2.5                                 # two steps of 5 every 4 bins
    assert probe.contrast(probe.blur(mel, 3, 0), speech) < 0.6 * sharp
    assert probe.contrast(probe.blur(mel, 3, 1), speech) == pytest.approx(sharp)   # constant in time
    assert probe.contrast(torch.full((80, 50), -5.0), speech) == 0
