"""Speaker perturbation of the content encoder's input (training only).

If the content encoder only ever sees speech whose voice has been randomly altered, while the
decoder must rebuild the unaltered original from the speaker vector of *another* segment, the
only thing worth keeping in the content code is what survives the alteration: the words.
Two cheap perturbations on log-mels (in the spirit of NANSY / FreeVC's spectrogram resize):

  * frequency warp: stretch or squeeze the mel axis by a random ratio (moves pitch harmonics
    and formants together, like a different vocal tract / a different voice);
  * spectral tilt: add a random straight line across the mel bins (a different timbre/EQ).

A third, :func:`new_voices`, makes voices rather than hiding them: it warps a segment *and* its
speaker reference by one ratio, so that the item becomes a speaker the corpus does not have
(more voices for the speaker encoder to learn from than the corpus's speakers).

Shapes: (B, n_mels, T) -> (B, n_mels, T).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def frequency_warp(mel: torch.Tensor, low: float = 0.85, high: float = 1.15,
                   floor: float = -11.5129) -> torch.Tensor:
    B, M, T = mel.shape
    out = torch.empty_like(mel)
    ratios = torch.empty(B).uniform_(low, high)
    for i, r in enumerate(ratios.tolist()):
        m = max(2, round(M * r))
        warped = F.interpolate(mel[i:i + 1, None], size=(m, T), mode="bilinear", align_corners=False)[0, 0]
        if m >= M:
            out[i] = warped[:M]
        else:
            out[i, :m] = warped
            out[i, m:] = floor
    return out


def warp_voice(mel: torch.Tensor, ratio: float) -> torch.Tensor:
    """One (n_mels, T) log-mel stretched along the mel axis by ``ratio`` (> 1 moves harmonics and
    formants up). Squeezed, its empty top bins repeat its top bin, as a real voice's band would go
    on, not the floor of :func:`frequency_warp`."""
    M, T = mel.shape
    m = max(2, round(M * ratio))
    w = F.interpolate(mel[None, None], size=(m, T), mode="bilinear", align_corners=False)[0, 0]
    return w[:M] if m >= M else torch.cat([w, w[-1:].expand(M - m, T)])


def new_voices(segments: torch.Tensor, references: torch.Tensor, spread: float):
    """Pseudo-speakers: item i's segment and reference, both (B, n_mels, T), warped along the mel
    axis by one random ratio in [1 - spread, 1 + spread] (:func:`warp_voice`).
    -> (segments, references), same shapes."""
    ratios = torch.empty(segments.shape[0]).uniform_(1 - spread, 1 + spread).tolist()

    def warp(mel):
        return torch.stack([warp_voice(x, r) for x, r in zip(mel, ratios)])
    return warp(segments), warp(references)


def spectral_tilt(mel: torch.Tensor, max_db: float = 6.0) -> torch.Tensor:
    """Add a random tilt of at most +-max_db across the band (log-mel is natural-log magnitude)."""
    B, M, _ = mel.shape
    slope = torch.empty(B, 1, 1).uniform_(-1, 1) * (max_db / 20 * 2.302585)
    line = torch.linspace(-0.5, 0.5, M).view(1, M, 1)
    return mel + slope * line


def perturb_speaker(mel: torch.Tensor, warp: float = 0.15, tilt_db: float = 6.0) -> torch.Tensor:
    """Both perturbations; ``warp=0`` and ``tilt_db=0`` switch them off."""
    if warp > 0:
        mel = frequency_warp(mel, 1 - warp, 1 + warp)
    if tilt_db > 0:
        mel = spectral_tilt(mel, tilt_db)
    return mel
