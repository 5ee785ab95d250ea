"""scripts/probe_vocoder_adapt.py: its loss and its crops, the parts that decide what is learnt."""
import random

import torch
from conftest import load_script


def test_stft_loss_is_zero_on_the_same_waveform_and_grows_with_the_error():
    probe = load_script("probe_vocoder_adapt")
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 8192, generator=g) * 0.1
    assert probe.stft_loss(wav, wav).item() < 1e-6
    noise = torch.randn(2, 8192, generator=g)
    near, far = probe.stft_loss(wav + 0.01 * noise, wav), probe.stft_loss(wav + 0.1 * noise, wav)
    assert 0 < near < far


def test_a_crop_takes_the_samples_of_its_frames():
    probe = load_script("probe_vocoder_adapt")
    frames = 40
    mel = torch.arange(frames, dtype=torch.float32).repeat(80, 1)             # column t holds t
    wav = torch.arange(frames * probe.HOP) // probe.HOP                         # sample i belongs to frame i // HOP
    rng = random.Random(0)
    for _ in range(5):
        m, w = probe.crop(mel, wav, 8, rng.randrange(0, frames - 8))
        assert m.shape == (80, 8) and w.shape == (8 * probe.HOP,)
        assert torch.equal(w[::probe.HOP].float(), m[0])                       # the same frames, in order
