"""Speaker perturbation of the content encoder's input (training only).

If the content encoder only ever sees speech whose voice has been randomly altered, while the
decoder must rebuild the unaltered original from the speaker vector of *another* segment, the
only thing worth keeping in the content code is what survives the alteration: the words.
Two cheap perturbations on log-mels (in the spirit of NANSY / FreeVC's spectrogram resize):

  * frequency warp: stretch or squeeze the mel axis by a random ratio (moves pitch harmonics
    and formants together, like a different vocal tract / a different voice);
  * spectral tilt: add a random straight line across the mel bins (a different timbre/EQ).

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
