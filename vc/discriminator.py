"""A least-squares GAN critic on mel patches (training only): L1 alone makes the decoder average
over what it cannot predict, and averaged spectra lose the fine structure that makes a voice
somebody's (MelGAN-VC and many others add such a critic next to the L1 loss).

With ``speaker_dim``, the critic also hears whose voice a patch should be (a projection
discriminator, Miyato & Koyama 2018): each patch's score adds the inner product of its features
with a projection of a speaker vector (B, speaker_dim), so "real" means real *and* that voice.

With ``low_band`` b > 0 it sees only the mel bands from b up (the upper bands, where the
autoencoder loses most of a voice's detail), so its verdicts press on them alone.

Shapes: (B, n_mels, T) log-mel -> (B, 1, (n_mels - low_band) / 8, T / 8) realness scores, one per
patch (T / 1 with ``time_stride`` 1), and the feature maps of every layer (for feature matching).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


class MelPatchCritic(nn.Module):
    """``time_stride`` 1 keeps every frame: one score per frame and 8 mel bands, each seeing ~9
    frames (~100 ms), for detail in time that the 8 x 8 patches average over."""

    def __init__(self, channels: int = 32, mel_mean: float = -5.0, mel_std: float = 2.5, speaker_dim: int = 0,
                 time_stride: int = 2, low_band: int = 0):
        super().__init__()
        self.mel_mean, self.mel_std, self.low_band = mel_mean, mel_std, low_band
        c, st = channels, (2, time_stride)
        self.layers = nn.ModuleList([
            spectral_norm(nn.Conv2d(1, c, 3, stride=st, padding=1)),
            spectral_norm(nn.Conv2d(c, 2 * c, 3, stride=st, padding=1)),
            spectral_norm(nn.Conv2d(2 * c, 4 * c, 3, stride=st, padding=1)),
            spectral_norm(nn.Conv2d(4 * c, 4 * c, 3, padding=1)),
        ])
        self.out = spectral_norm(nn.Conv2d(4 * c, 1, 3, padding=1))
        self.speaker = spectral_norm(nn.Linear(speaker_dim, 4 * c)) if speaker_dim else None

    def forward(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = ((mel[:, self.low_band:] - self.mel_mean) / self.mel_std)[:, None]
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        score = self.out(x)
        if self.speaker is not None:     # + <patch features, projected voice>
            voice = self.speaker(speaker.to(x.dtype))[:, :, None, None]
            score = score + (x * voice).sum(1, keepdim=True)
        return score, feats


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN: real patches towards 1 (none: no real term), generated ones towards 0."""
    real = ((real_scores - 1) ** 2).mean() if real_scores.numel() else 0.0
    return real + (fake_scores ** 2).mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN: the generator wants its patches scored 1."""
    return ((fake_scores - 1) ** 2).mean()


def feature_matching(real_feats, fake_feats) -> torch.Tensor:
    """L1 between the critic's features of real and generated mels (real ones detached); 0 for
    none (no item of the batch is a real example: ``lossy_band``)."""
    if not len(real_feats[0]):
        return fake_feats[0].new_zeros(())
    return sum((r.detach() - f).abs().mean() for r, f in zip(real_feats, fake_feats)) / len(real_feats)
