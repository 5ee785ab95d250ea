"""HiFi-GAN's discriminators and losses, for adapting the vocoder to the model's mels (training only).

A spectral loss alone pulls a vocoder toward average spectra, the blur it should undo
(reports/vocoder_adapt_probe_v9.md); HiFi-GAN was trained against two critics on the waveform,
and no wheel ships them, so they are rebuilt here from the paper (Kong et al. 2020, section 2.2)
and trained from scratch:

``MultiPeriodDiscriminator``  one 2-D critic per period p in (2, 3, 5, 7, 11): the waveform folded
                              into (T / p, p), so each sees every p-th sample (periodic structure).
``MultiScaleDiscriminator``   three 1-D critics on the raw, x2 and x4 average-pooled waveform.

``width`` scales every channel count (1.0 = the paper's, ~70 M parameters in all; 0.25 runs
on a CPU). Shapes: a (B, 1, T) waveform -> a list of realness maps, one per critic, and a list of
each critic's feature maps (for feature matching). The losses are the paper's: least squares,
feature matching x2, mel L1 x45.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from .features import MelConfig, mel_spectrogram

PERIODS = (2, 3, 5, 7, 11)
FEATURE_WEIGHT = 2.0
MEL_WEIGHT = 45.0


def _ch(n: int, width: float) -> int:
    return max(4, int(round(n * width)))


def _layers(convs, post, x):
    """A critic's body: leaky-ReLU convs, then a score layer -> (scores (B, n), every layer's output)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodCritic(nn.Module):
    def __init__(self, period: int, width: float = 1.0):
        super().__init__()
        self.period = period
        chans = [1] + [_ch(c, width) for c in (32, 128, 512, 1024)]
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0))) for a, b in zip(chans, chans[1:])]
            + [weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, padding=(2, 0)))])
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        b, c, t = x.shape
        if t % self.period:                                   # pad to whole periods
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        return _layers(self.convs, self.post, x.view(b, c, -1, self.period))


class ScaleCritic(nn.Module):
    def __init__(self, width: float = 1.0, spectral: bool = False):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        c = [_ch(n, width) for n in (128, 128, 256, 512, 1024, 1024, 1024)]
        g = [1, 4, 16, 16, 16, 16, 1]
        spec = [(15, 1, 7), (41, 2, 20), (41, 2, 20), (41, 4, 20), (41, 4, 20), (41, 1, 20), (5, 1, 2)]
        layers, prev = [], 1
        for ch, groups, (k, s, p) in zip(c, g, spec):
            groups = groups if prev % groups == 0 and ch % groups == 0 else 1
            layers.append(norm(nn.Conv1d(prev, ch, k, s, groups=groups, padding=p)))
            prev = ch
        self.convs = nn.ModuleList(layers)
        self.post = norm(nn.Conv1d(prev, 1, 3, 1, padding=1))

    def forward(self, x):
        return _layers(self.convs, self.post, x)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        self.critics = nn.ModuleList(PeriodCritic(p, width) for p in PERIODS)

    def forward(self, wav):
        """(B, 1, T) -> ([scores (B, n)] per critic, [[features] per critic])."""
        outs = [c(wav) for c in self.critics]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        self.critics = nn.ModuleList([ScaleCritic(width, spectral=True), ScaleCritic(width), ScaleCritic(width)])
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav):
        """(B, 1, T) -> ([scores (B, n)] per critic, [[features] per critic])."""
        scores, feats = [], []
        for i, critic in enumerate(self.critics):
            if i:
                wav = self.pool(wav)
            s, f = critic(wav)
            scores.append(s)
            feats.append(f)
        return scores, feats


class Discriminators(nn.Module):
    """Both of HiFi-GAN's discriminators, called as one: (B, 1, T) -> (scores, features) over all 8 critics."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.mpd, self.msd = MultiPeriodDiscriminator(width), MultiScaleDiscriminator(width)

    def forward(self, wav):
        s1, f1 = self.mpd(wav)
        s2, f2 = self.msd(wav)
        return s1 + s2, f1 + f2


def discriminator_loss(real_scores, fake_scores) -> torch.Tensor:
    """Least squares: real -> 1, generated -> 0, summed over the critics."""
    return sum(((1 - r) ** 2).mean() + (f ** 2).mean() for r, f in zip(real_scores, fake_scores))


def adversarial_loss(fake_scores) -> torch.Tensor:
    """The generator's side: its output should score 1."""
    return sum(((1 - f) ** 2).mean() for f in fake_scores)


def feature_loss(real_feats, fake_feats) -> torch.Tensor:
    """L1 between the critics' feature maps of real and generated audio (real ones held fixed)."""
    return sum((r.detach() - f).abs().mean() for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs))


def mel_loss(fake: torch.Tensor, real: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """L1 between the log-mels of (B, T) waveforms."""
    return (mel_spectrogram(fake, cfg) - mel_spectrogram(real, cfg)).abs().mean()


def generator_loss(critics: Discriminators, fake: torch.Tensor, real: torch.Tensor,
                   cfg: MelConfig = MelConfig()) -> tuple[torch.Tensor, dict]:
    """HiFi-GAN's generator objective on (B, T) waveforms: adversarial + 2 x feature matching + 45 x mel L1."""
    fake_scores, fake_feats = critics(fake[:, None])
    with torch.no_grad():
        _, real_feats = critics(real[:, None])
    parts = {"adv": adversarial_loss(fake_scores), "fm": feature_loss(real_feats, fake_feats),
             "mel": mel_loss(fake, real, cfg)}
    return parts["adv"] + FEATURE_WEIGHT * parts["fm"] + MEL_WEIGHT * parts["mel"], parts
