"""Frame attention: a decoder part that recalls real frames of the target voice (vc.model uses it
with ``ModelConfig.frame_attention``).

Shapes: decoder features h (B, C, T), its log-mel (B, n_mels, T), reference frames (B, n_mels, S),
all in the model's scaled log-mel units -> (B, n_mels, T).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class FrameAttention(nn.Module):
    """Real frames of the voice, recalled frame by frame (kNN-VC's matching, Baas et al. 2023, made
    soft and learned): (B, C, T) decoder features, (B, n_mels, T) its mel, (B, n_mels, S) reference
    frames -> (B, n_mels, T)

        out = mel + g(h) * (sum_s a_ts ref_s - mel),   a_ts = softmax_s(-|P mel_t - P ref_s|^2 / n_mels / tau)

    P (n_mels x n_mels, starts as the identity) and tau are learned, and so is the gate g (one
    value per band and frame, from the decoder's features; zero below ``band``), whose layer
    starts at zero. Trained with references from other utterances of the speaker (vc.batches), so
    that it cannot copy the words. Only the reference's speech frames are recalled (within
    ``SPEECH_DB`` of its loudest, as vc.match.speech_mask), so a whole clip or its speech frames
    alone give the same output."""

    ROWS = 4096                     # query frames attended at once (bounded memory on long inputs)
    SPEECH_DB = 40.0

    def __init__(self, n_mels: int, channels: int, band: int = 0, mel_std: float = 2.5):
        """``channels`` of the decoder's features; ``band``: the first mel band the gate may open;
        ``mel_std``: the model's log-mel scaling (the speech threshold is in its units)."""
        super().__init__()
        self.proj = nn.Linear(n_mels, n_mels, bias=False)
        nn.init.eye_(self.proj.weight)
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.05)))
        self.gate = nn.Conv1d(channels, n_mels, 1)
        nn.init.zeros_(self.gate.weight), nn.init.zeros_(self.gate.bias)
        self.quiet = self.SPEECH_DB / 20 * math.log(10) / mel_std   # in scaled log-mel
        self.register_buffer("bands", (torch.arange(n_mels) >= band).float()[:, None],
                             persistent=False)

    def forward(self, h: torch.Tensor, mel: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        keys = self.proj(reference.transpose(1, 2).to(mel.dtype))            # (B, S, n_mels)
        values = reference.transpose(1, 2).to(mel.dtype)
        level = reference.float().mean(1)                                   # (B, S)
        quiet = (level < level.max(1, keepdim=True).values - self.quiet)[:, None]   # (B, 1, S)
        recalled = []
        for q in mel.transpose(1, 2).split(self.ROWS, dim=1):               # (B, rows, n_mels)
            d = torch.cdist(self.proj(q).float(), keys.float()) ** 2 / mel.shape[1]
            logits = (-d / self.log_tau.exp()).masked_fill(quiet, float("-inf"))
            a = torch.softmax(logits, dim=2).to(mel.dtype)                  # (B, rows, S)
            recalled.append(a @ values)
        recalled = torch.cat(recalled, 1).transpose(1, 2)                  # (B, n_mels, T)
        return mel + self.gate(h) * self.bands * (recalled - mel)
