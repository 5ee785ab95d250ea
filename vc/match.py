"""Envelope matching: an inference post-step that moves each converted frame's spectral envelope
toward the target's nearest real frames (kNN-VC's idea, Baas, van Niekerk and Kamper 2023, applied
to the decoder's log-mel instead of replacing it).

The decoder's output C (n_mels, T) is smooth: it carries the target's voice only as far as one
speaker vector can. For each frame of C, the ``k`` nearest speech frames of the target clip(s)
(Euclidean, in log-mel) are averaged into K; then only the envelope moves,

    out = C + weight * (E(K) - E(C)),

E keeping the first ``ENVELOPE_COEFFS`` cepstral (orthonormal DCT-II) coefficients along the mel
axis. So the output keeps C's harmonics (the source's pitch and timing) and takes real formants of
the target. weight 0 is the plain conversion. Measured in reports/knn_frames_probe_v9.md and
reports/match_screen_v9.md: the speaker moves toward the target at weight 0.25 with no measurable
loss of words or quality; weight 1 with k = 1 costs both.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SPEECH_DB = 40.0        # frames within this many dB of the loudest one count as speech
ENVELOPE_COEFFS = 20    # cepstral coefficients kept along the mel axis
K = 4                   # nearest frames averaged
MAX_WEIGHT = 1.0
MAX_DISTANCES = 1 << 24  # frame distances held at once (64 MB): long inputs are matched in pieces


def speech_mask(mel: torch.Tensor, db: float = SPEECH_DB) -> torch.Tensor:
    """(n_mels, T) log-mel (natural log of magnitude) -> (T,) bool: the frames whose mean level is
    within ``db`` decibels of the loudest frame's (silence would be matched to silence)."""
    energy = mel.mean(0)
    return energy > energy.max() - db / 20 * math.log(10)


def speech_frames(mel: torch.Tensor, db: float = SPEECH_DB) -> torch.Tensor:
    """(n_mels, T) -> (n_mels, S): the speech frames (:func:`speech_mask`)."""
    return mel[:, speech_mask(mel, db)]


def envelope(mel: torch.Tensor, n: int = ENVELOPE_COEFFS) -> torch.Tensor:
    """(n_mels, T) -> (n_mels, T): the log-mel smoothed along the mel axis by keeping its first ``n``
    cepstral coefficients: the envelope without the harmonics' ripple."""
    m = mel.shape[0]
    k, i = torch.arange(m, device=mel.device)[:, None], torch.arange(m, device=mel.device)[None]
    dct = torch.cos(torch.pi / m * (i + 0.5) * k) * math.sqrt(2.0 / m)
    dct[0] /= math.sqrt(2.0)                                        # orthonormal: dct.T is its inverse
    dct = dct[:n].to(mel.dtype)
    return dct.T @ (dct @ mel)


def nearest_frames(query: torch.Tensor, bank: torch.Tensor, k: int = K) -> torch.Tensor:
    """(n_mels, T) query, (n_mels, S) bank -> (n_mels, T): each query frame replaced by the mean of
    its ``k`` nearest bank frames (Euclidean; k is capped at S)."""
    rows = max(1, MAX_DISTANCES // bank.shape[1])                   # query frames per piece
    out = []
    for q in query.T.split(rows):                                   # (rows, n_mels): bounded memory
        d = torch.cdist(q[None], bank.T[None])[0]                    # (rows, S)
        idx = d.topk(min(k, bank.shape[1]), largest=False).indices # (rows, k)
        out.append(bank.T[idx].mean(1))
    return torch.cat(out).T


def envelope_shift(mel: torch.Tensor, bank: torch.Tensor, k: int = K,
                   coeffs: int = ENVELOPE_COEFFS) -> torch.Tensor:
    """(n_mels, T) frames, (n_mels, S) bank -> (n_mels, T): E(K) - E(mel), K the mean of each
    frame's ``k`` nearest bank frames. The neighbours are chosen without gradient; the shift is
    differentiable in ``mel`` (vc.losses.envelope_match trains the decoder with it)."""
    near = nearest_frames(mel.detach().float(), bank.detach().float(), k)
    return envelope(near, coeffs) - envelope(mel.float(), coeffs)


def match_envelope(mel: torch.Tensor, bank: torch.Tensor, weight: float, k: int = K,
                   coeffs: int = ENVELOPE_COEFFS, smooth: int = 1) -> torch.Tensor:
    """(n_mels, T) conversion, (n_mels, S) target speech frames -> (n_mels, T), as above; with
    ``smooth`` > 1 (odd) the envelope shift is a moving average over that many frames (the nearest
    frames change from one frame to the next; the shift need not). Measured on val: smoothing costs
    voice and buys no quality back (reports/match_smooth_probe_v9.md), so every path uses 1."""
    if weight == 0 or bank.shape[1] == 0:
        return mel
    shift = envelope_shift(mel, bank, k, coeffs)
    if smooth > 1:
        shift = F.avg_pool1d(shift[None], smooth, 1, smooth // 2, count_include_pad=False)[0]
    return mel.float() + weight * shift


def check_weight(weight) -> float:
    """The matching weight, checked: a number from 0 (off) to MAX_WEIGHT."""
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise ValueError(f"match {weight!r}: give a number from 0 (off) to {MAX_WEIGHT:g}") from None
    if not 0.0 <= w <= MAX_WEIGHT:
        raise ValueError(f"match {w:g}: give a number from 0 (off) to {MAX_WEIGHT:g}")
    return w
