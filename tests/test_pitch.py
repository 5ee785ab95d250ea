"""vc.pitch: the melody at the mel's frame rate, without the voice's own pitch level."""
import numpy as np
import pytest

from vc.features import MelConfig, mel_spectrogram
from vc.pitch import PITCH_CHANNELS, pitch_features

SR = 22050


def glide(f_start: float, f_end: float, seconds: float = 1.0, harmonics: int = 8) -> np.ndarray:
    """A harmonic tone whose F0 moves exponentially from ``f_start`` to ``f_end`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = f_start * (f_end / f_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def test_one_column_per_mel_frame():
    for n in (SR, SR + 255, SR + 256, 3 * SR // 2):
        wav = glide(120, 180, n / SR)
        feats = pitch_features(wav)
        assert feats.shape == (PITCH_CHANNELS, mel_spectrogram(wav).shape[1]) == (2, n // 256)
        assert feats.dtype == np.float32


def test_a_rising_tone_rises_and_is_voiced():
    feats = pitch_features(glide(100, 200))
    voiced = feats[1] == 1
    assert voiced.mean() > 0.9
    z = feats[0, voiced]
    assert np.corrcoef(np.arange(z.size), z)[0, 1] > 0.98       # the melody goes up throughout
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3    # standardised over voiced frames


def test_the_voice_level_is_removed():
    """The same melody an octave higher gives the same features (a frequency warp of the voice,
    as vc.augment makes, changes nothing)."""
    low, high = pitch_features(glide(100, 150)), pitch_features(glide(200, 300))
    both = (low[1] == 1) & (high[1] == 1)
    assert both.mean() > 0.9
    assert np.abs(low[0, both] - high[0, both]).max() < 0.1


def test_silence_and_noise_are_unvoiced():
    assert not pitch_features(np.zeros(SR, np.float32)).any()
    noise = 0.1 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    feats = pitch_features(noise)
    assert feats[1].mean() < 0.2
    assert (feats[0][feats[1] == 0] == 0).all()                 # unvoiced frames carry no pitch


def test_shorter_than_the_tracker_window_gives_unvoiced_frames():
    feats = pitch_features(glide(120, 130, 0.03))
    assert feats.shape == (2, int(0.03 * SR) // 256)
    assert np.isfinite(feats).all()


@pytest.mark.parametrize("hop", [200, 256])
def test_follows_the_mel_settings(hop):
    cfg = MelConfig(hop_length=hop)
    wav = glide(120, 180)
    assert pitch_features(wav, cfg).shape[1] == mel_spectrogram(wav, cfg).shape[1]
