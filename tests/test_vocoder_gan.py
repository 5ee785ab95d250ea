"""vc/vocoder_gan.py: HiFi-GAN's critics and losses, with tiny critics and a tiny generator."""
import torch

from vc.vocoder import HiFiGANGenerator
from vc.vocoder_gan import (PERIODS, Discriminators, discriminator_loss, feature_loss, generator_loss,
                            mel_loss)

TINY_GENERATOR = dict(num_mels=80, upsample_initial_channel=32, upsample_rates=[8, 8, 2, 2],
                      upsample_kernel_sizes=[16, 16, 4, 4], resblock_kernel_sizes=[3],
                      resblock_dilation_sizes=[[1, 3]])


def tones_and_noise(n=4, samples=4096, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 22050
    f0 = 100 + 200 * torch.rand(n, 1, generator=g)
    real = 0.3 * torch.sin(2 * torch.pi * f0 * t)
    return real, 0.3 * torch.randn(n, samples, generator=g)


def test_every_critic_scores_and_reports_its_features():
    critics = Discriminators(width=0.125)
    scores, feats = critics(torch.randn(2, 1, 4097))           # not a whole number of any period
    assert len(scores) == len(feats) == len(PERIODS) + 3
    assert all(s.shape[0] == 2 and torch.isfinite(s).all() for s in scores)
    assert [len(f) for f in feats] == [6] * len(PERIODS) + [8] * 3


def test_the_losses_are_zero_where_they_should_be():
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert discriminator_loss(ones, zeros).item() == 0
    assert discriminator_loss(zeros, ones).item() == 2
    f = [[torch.randn(2, 3, 7)]]
    assert feature_loss(f, f).item() == 0
    wav = torch.randn(2, 4096) * 0.1
    assert mel_loss(wav, wav).item() == 0 and mel_loss(wav, 0.5 * wav).item() > 0.5


def test_one_critic_step_lowers_its_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    critics = Discriminators(width=0.125)
    opt = torch.optim.AdamW(critics.parameters(), 2e-4, betas=(0.8, 0.99))
    real, fake = tones_and_noise()

    def loss():
        return discriminator_loss(critics(real[:, None])[0], critics(fake[:, None])[0])

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss().item() < before.item()


def test_one_generator_step_lowers_its_loss_against_fixed_critics():
    torch.manual_seed(0)
    gen, critics = HiFiGANGenerator(TINY_GENERATOR), Discriminators(width=0.125)
    for q in critics.parameters():
        q.requires_grad_(False)
    mel = torch.randn(2, 80, 16) - 4
    real, _ = tones_and_noise(n=2, samples=16 * 256)
    opt = torch.optim.AdamW(gen.parameters(), 1e-3, betas=(0.8, 0.99))
    before, parts = generator_loss(critics, gen(mel).squeeze(1), real)
    assert set(parts) == {"adv", "fm", "mel"} and all(torch.isfinite(v) for v in parts.values())
    opt.zero_grad()
    before.backward()
    assert all(q.grad is not None for q in gen.parameters())
    opt.step()
    after, _ = generator_loss(critics, gen(mel).squeeze(1), real)
    assert after.item() < before.item()
