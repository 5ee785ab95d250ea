"""scripts/probe_knn_frames.py: which frames count as speech, and the nearest-frame replacement."""
import torch
from conftest import load_script


def test_speech_frames_drop_the_quiet_ones():
    probe = load_script("probe_knn_frames")
    mel = torch.full((80, 6), -2.0)
    mel[:, 2] = -12.0                                  # 87 dB below the others (log magnitude)
    mel[:, 4] = -5.0                                   # 26 dB below: kept
    kept = probe.speech_frames(mel)
    assert kept.shape == (80, 5) and not (kept == -12.0).any()


def test_each_frame_becomes_the_mean_of_its_nearest_bank_frames():
    probe = load_script("probe_knn_frames")
    bank = torch.tensor([[0.0, 1.0, 10.0, 11.0]])      # two clusters on one axis
    query = torch.tensor([[0.2, 10.4]])
    assert torch.allclose(probe.knn_frames(query, bank, 1), torch.tensor([[0.0, 10.0]]))
    assert torch.allclose(probe.knn_frames(query, bank, 2), torch.tensor([[0.5, 10.5]]))
    assert probe.knn_frames(query, bank, 9).shape == (1, 2)     # k capped at the bank's size


def test_the_envelope_keeps_the_smooth_shape_and_drops_the_ripple():
    probe = load_script("probe_knn_frames")
    bands = torch.arange(80, dtype=torch.float32)[:, None]
    smooth = -5 + torch.sin(bands / 80 * 3.1416)                   # a broad formant-like hump
    ripple = 0.5 * torch.cos(bands * 3.1416 / 2)                    # a period of 4 bands: harmonics
    env = probe.envelope(smooth + ripple)
    assert (env - smooth).abs().mean() < 0.05 < (smooth + ripple - smooth).abs().mean()
    assert torch.allclose(probe.envelope(smooth + ripple, n=80), smooth + ripple, atol=1e-4)   # all kept
