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


def test_gan_training_stops_saves_and_resumes(tmp_path):
    """--gan --state: a call that runs out of steps saves generator, critics, optimisers and counts;
    the next call starts from there and does only what is left."""
    import argparse
    import copy

    from test_vocoder_gan import TINY_GENERATOR
    from vc.vocoder import HiFiGANGenerator
    probe = load_script("probe_vocoder_adapt")
    torch.manual_seed(0)
    base = HiFiGANGenerator(TINY_GENERATOR)
    pairs = [(torch.randn(80, 12) - 5, torch.randn(12 * probe.HOP) * 0.1) for _ in range(3)]
    state = tmp_path / "state.pt"
    args = argparse.Namespace(disc_width=0.0625, disc_lr=2e-4, lr=1e-4, batch=2, frames=8, disc_steps=3,
                              steps=2, state=str(state), max_minutes=None)
    gen = copy.deepcopy(base)
    probe.train_gan(gen, base, pairs, args, random.Random(0), torch.device("cpu"))
    saved = torch.load(state, weights_only=True)
    assert (saved["critics_steps"], saved["joint_steps"]) == (3, 2)
    assert not torch.equal(saved["generator"]["conv_post.weight"], base.state_dict()["conv_post.weight"])
    args.steps = 5                                       # three more joint steps, no more critic-only steps
    again = copy.deepcopy(base)
    probe.train_gan(again, base, pairs, args, random.Random(0), torch.device("cpu"))
    resumed = torch.load(state, weights_only=True)
    assert (resumed["critics_steps"], resumed["joint_steps"]) == (3, 5)
    assert not torch.equal(resumed["generator"]["conv_post.weight"], saved["generator"]["conv_post.weight"])


def test_pairs_travel_in_half_precision_and_come_back_as_they_were(tmp_path):
    """--pairs: what a machine without the corpus trains on is what was built here, to fp16 rounding."""
    probe = load_script("probe_vocoder_adapt")
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(80, n, generator=g) - 5, torch.randn(n * probe.HOP, generator=g) * 0.1) for n in (40, 57)]
    probe.save_pairs(pairs, tmp_path / "pairs.pt")
    back = probe.read_pairs(tmp_path / "pairs.pt")
    assert len(back) == 2
    for (R, w), (R2, w2) in zip(pairs, back):
        assert R2.dtype == w2.dtype == torch.float32 and R2.shape == R.shape and w2.shape == w.shape
        torch.testing.assert_close(R2, R, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(w2, w, rtol=1e-3, atol=1e-4)
