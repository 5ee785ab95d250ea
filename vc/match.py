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

High-band matching (``match_high`` w > 0) goes further where the voice is and the words are not:
in the mel bands from ``HIGH_BAND`` up (about 2.5 kHz; the ``HIGH_RAMP`` bands below it in a linear
ramp) the whole frame, fine structure included, moves by w toward the mean K of its nearest real
target frames, and only in sonorant frames (vowels, nasals: the low bands outweigh the high ones),
whose upper formants are the speaker's; fricatives and bursts, whose high bands carry the words,
keep the conversion's own:

    out = C + weight * ramp(band) * sonorance(t) * (K - C).

The autoencoder loses most of a voice's identity in those bands (reports/ceiling_probe_v7.md);
measured in reports/postfilter_probe_v10.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SPEECH_DB = 40.0        # frames within this many dB of the loudest one count as speech
ENVELOPE_COEFFS = 20    # cepstral coefficients kept along the mel axis
K = 4                   # nearest frames averaged
MAX_WEIGHT = 1.0
HIGH_BAND = 50          # high-band matching: the first mel band fully mixed (~2.5 kHz of 80 bands to 8 kHz)
HIGH_RAMP = 10          # ... and the bands below it that rise linearly to it
SONORANT_NATS = 2.0     # a frame is fully sonorant when its low bands' mean log-mel outweighs its high
                        # bands' by this much (natural log, ~17 dB); 0 when the high bands are as loud
MAX_DISTANCES = 1 << 24  # frame distances held at once (64 MB): long inputs are matched in pieces


def speech_mask(mel: torch.Tensor, db: float = SPEECH_DB) -> torch.Tensor:
    """(n_mels, T) log-mel (natural log of magnitude) -> (T,) bool: the frames whose mean level is
    within ``db`` decibels of the loudest frame's (silence would be matched to silence)."""
    energy = mel.mean(0)
    return energy > energy.max() - db / 20 * math.log(10)


def speech_frames(mel: torch.Tensor, db: float = SPEECH_DB) -> torch.Tensor:
    """(n_mels, T) -> (n_mels, S): the speech frames (:func:`speech_mask`)."""
    return mel[:, speech_mask(mel, db)]


def dct_matrix(m: int, device=None) -> torch.Tensor:
    """(m, m) orthonormal DCT-II along the mel axis: row k is cepstral coefficient k; its transpose
    is its inverse."""
    k, i = torch.arange(m, device=device)[:, None], torch.arange(m, device=device)[None]
    dct = torch.cos(torch.pi / m * (i + 0.5) * k) * math.sqrt(2.0 / m)
    dct[0] /= math.sqrt(2.0)
    return dct


def envelope(mel: torch.Tensor, n: int = ENVELOPE_COEFFS) -> torch.Tensor:
    """(n_mels, T) -> (n_mels, T): the log-mel smoothed along the mel axis by keeping its first ``n``
    cepstral coefficients: the envelope without the harmonics' ripple."""
    dct = dct_matrix(mel.shape[0], mel.device)[:n].to(mel.dtype)
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


def band_ramp(n_mels: int, band: int = HIGH_BAND, width: int = HIGH_RAMP) -> torch.Tensor:
    """(n_mels, 1): 0 below ``band - width``, 1 from ``band`` up, linear between."""
    i = torch.arange(n_mels, dtype=torch.float32)
    return ((i - (band - width)) / width).clamp(0, 1)[:, None]


def sonorance(mel: torch.Tensor, band: int = HIGH_BAND, width: int = HIGH_RAMP,
              nats: float = SONORANT_NATS) -> torch.Tensor:
    """(n_mels, T) log-mel -> (T,) in [0, 1]: how far each frame's bands below ``band - width``
    outweigh its bands from ``band`` up (mean log-mel), 1 at ``nats`` or more: vowels and nasals
    near 1, fricatives, bursts and silence near 0."""
    low, high = mel[: band - width].mean(0), mel[band:].mean(0)
    return ((low - high) / nats).clamp(0, 1)


def consonant_weights(mel: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """(n_mels, T) log-mel -> (n_mels, T) in [0, 1]: its fricatives' and bursts' high bands, the
    non-sonorant speech frames (1 - :func:`sonorance` within SPEECH_DB of the loudest frame) times
    :func:`band_ramp`; where high-band matching does not reach (vc.losses.obstruent). On speech
    about half the frames are partly non-sonorant (vowels whose high bands are within 2 nats of
    their low ones); ``strict`` keeps only the frames whose high bands are as loud as their low
    bands (sonorance 0; ~11 % of speech frames on 36 val clips): fricatives proper."""
    son = sonorance(mel)
    frames = speech_mask(mel) * ((son == 0).float() if strict else 1 - son)
    return band_ramp(mel.shape[0]).to(mel.device) * frames[None]


def band_means(mel: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(..., n_mels, T) values, (..., n_mels, T) weights -> (..., n_mels, 1): each band's weighted
    mean over time (0 where a band has no weight)."""
    return (w * mel).sum(-1, keepdim=True) / w.sum(-1, keepdim=True).clamp(min=1e-6)


def match_high(mel: torch.Tensor, bank: torch.Tensor, weight: float, k: int = K,
               band: int = HIGH_BAND) -> torch.Tensor:
    """(n_mels, T) conversion, (n_mels, S) target speech frames -> (n_mels, T): high-band matching
    (see the module's docstring). ``weight`` 0 is the conversion as it is."""
    if weight == 0 or bank.shape[1] == 0:
        return mel
    mel = mel.float()
    near = nearest_frames(mel, bank.float(), k)
    gate = band_ramp(mel.shape[0], band).to(mel.device) * sonorance(mel, band)[None]
    return mel + weight * gate * (near - mel)


def check_weight(weight, name: str = "match") -> float:
    """A matching weight (``name``: match or match-high), checked: a number from 0 (off) to MAX_WEIGHT."""
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {weight!r}: give a number from 0 (off) to {MAX_WEIGHT:g}") from None
    if not 0.0 <= w <= MAX_WEIGHT:
        raise ValueError(f"{name} {w:g}: give a number from 0 (off) to {MAX_WEIGHT:g}")
    return w
