"""Training objectives.

reconstruction   L1 between the decoded and the original log-mel, (B, n_mels, T) each; with
                 ``band_tilt`` t != 1 each band's error is weighted linearly from 1 (lowest band)
                 to t (highest), the weights rescaled to mean 1: more of the model's effort on the
                 upper bands, where the reconstruction loses most of the voice (reports/ceiling_probe_v7.md).
spectral_detail  L1 between their differences along the mel axis: the harmonic peaks and valleys
                 that an averaged (blurred) spectrum loses and a speaker verifier listens to.
obstruent        L1 of the reconstruction (or the swap) on the high bands (vc.match.band_ramp: from
                 ~2 kHz up) of the input's non-sonorant speech frames (fricatives, bursts: 1 -
                 vc.match.sonorance, within match.SPEECH_DB of the loudest frame), averaged over those
                 weights: the consonants' noise, where the reconstruction loses the most words
                 (reports/ceiling_words_probe_v11.md) and which v11's high-band matching leaves alone.
                 ``centre``: each band's mean over those frames taken out first (the error of the
                 consonants' pattern, not of their average colour); ``strict``: fricatives proper
                 only (high bands as loud as the low ones), not the partly sonorant vowels.
classifier       cross-entropy of the adversary on (detached) content codes: it learns to name
                 the speaker of a content code.
adversarial      what the encoder minimises to defeat the adversary, logits (B, n_speakers):
                 ``uniform``  KL(uniform || p): push the adversary's belief to "anyone" (0 at uniform);
                 ``neg_ce``   minus the cross-entropy (Chou et al. 2018): make it wrong; unbounded,
                              so it is clipped at log(n_speakers) to stay stable.
speaker_contrast GE2E softmax (Wan et al. 2018) on a batch's speaker vectors (B, D), each speaker's
                 items consecutive: every vector is nearer (cosine) to the centroid of its own
                 speaker's *other* items than to any other speaker's centroid.
cosine_distance  1 - cosine of (B, D) rows: speaker vectors (cycle) and d-vectors (distillation);
                 of (B, T, D) frames: Whisper features (vc.asr_judge).
envelope_match   L1 between each speech frame's spectral envelope (vc.match.envelope) and that of
                 the mean of its k nearest speech frames of the target speaker's mels (chosen without
                 gradient): every frame of the swap should look like some real frame of the target.
frozen           a module's output with its weights held fixed (adversary, read-back encoders).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import match


def reconstruction(pred: torch.Tensor, target: torch.Tensor, band_tilt: float = 1.0,
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """L1 of (B, n_mels, T) mels. ``keep`` (B, n_mels) bool: which items are a target in which
    bands (each band's error is averaged over the items it keeps)."""
    err = (pred - target).abs()
    if keep is None:
        if band_tilt == 1.0:
            return err.mean()
        band = err.mean(dim=(0, 2))
    else:
        keep = keep.to(err.dtype)
        band = (err.mean(dim=2) * keep).sum(0) / keep.sum(0).clamp(min=1.0)
    w = torch.linspace(1.0, band_tilt, err.shape[1], device=err.device, dtype=err.dtype)
    return (band * w / w.mean()).mean()


def spectral_detail(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.diff(dim=1) - target.diff(dim=1)).abs().mean()


def obstruent(pred: torch.Tensor, target: torch.Tensor, centre: bool = False, strict: bool = False) -> torch.Tensor:
    """(B, n_mels, T) output and input -> scalar (0 when no frame qualifies). With ``centre`` each
    item's weighted mean over those frames is taken out of each band, of the output and the input
    alike: what stays is how the consonants differ from one another and when (the words), not
    their average colour (part of the voice; the swap should keep the target's). ``strict``:
    fricatives proper only (vc.match.consonant_weights), not the partly sonorant frames."""
    target, pred = target.float(), pred.float()
    w = torch.stack([match.consonant_weights(t, strict) for t in target])    # (B, n_mels, T)
    err = pred - target
    if centre:
        err = err - match.band_means(err, w)
    return (w * err.abs()).sum() / w.sum().clamp(min=1.0)


def classifier(logits: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, speakers)


def adversarial(logits: torch.Tensor, speakers: torch.Tensor, kind: str = "uniform") -> torch.Tensor:
    if kind == "uniform":
        return -F.log_softmax(logits, dim=1).mean(dim=1).mean() - math.log(logits.shape[1])
    if kind == "neg_ce":
        return -torch.clamp(F.cross_entropy(logits, speakers), max=math.log(logits.shape[1]))
    raise ValueError(f"unknown adversarial loss '{kind}' (uniform or neg_ce)")


def speaker_contrast(vectors: torch.Tensor, per_speaker: int, scale: float = 10.0) -> torch.Tensor:
    """vectors: (n_speakers * per_speaker, D), the items of one speaker consecutive (as
    vc.batches.SegmentSampler draws them) -> the mean cross-entropy of each vector naming its own
    speaker among the batch's centroids, its own centroid leaving it out (GE2E; a fixed
    ``scale`` instead of GE2E's learned one). 0 when each speaker's vectors agree and differ
    from everyone else's."""
    if per_speaker < 2 or vectors.shape[0] % per_speaker:
        raise ValueError(f"speaker_contrast needs items in groups of per_speaker >= 2, got {vectors.shape[0]} "
                         f"items and per_speaker {per_speaker}")
    n = vectors.shape[0] // per_speaker
    v = F.normalize(vectors.float(), dim=-1).view(n, per_speaker, -1)
    sums = v.sum(1)                                                   # (n, D)
    sim = torch.einsum("imd,kd->imk", v, F.normalize(sums, dim=-1))   # (n, m, n): item vs centroid
    own = (v * F.normalize(sums[:, None] - v, dim=-1)).sum(-1)        # (n, m): vs its speaker's others
    sim = torch.where(torch.eye(n, dtype=torch.bool, device=v.device)[:, None, :], own[..., None], sim)
    target = torch.arange(n, device=v.device).repeat_interleave(per_speaker)
    return F.cross_entropy(scale * sim.reshape(n * per_speaker, n), target)


def adversarial_weight(step: int, weight: float, warmup: int, ramp: int) -> float:
    """Chou et al. 2018 schedule: 0 while the adversary warms up, then a linear ramp to ``weight``."""
    if step < warmup:
        return 0.0
    return weight * min(1.0, (step - warmup) / max(1, ramp))


def cosine_distance(pred: torch.Tensor, target: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """1 - cosine along the feature axis ``dim`` (rows of (B, D); frames of (B, T, D) with
    dim=-1), averaged over the rest: 0 when they point the same way."""
    return (1 - F.cosine_similarity(pred, target, dim=dim)).mean()


def frozen(module: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``module(*inputs)`` with its weights held fixed: gradients reach the inputs only.
    (The adversary's verdict trains the encoder, not the adversary; the cycle terms' read-back
    trains the decoder that made the conversion, not the encoder that reads it.)"""
    params = {k: v.detach() for k, v in module.named_parameters()}
    return torch.func.functional_call(module, params, inputs)


def envelope_match(pred: torch.Tensor, bank: torch.Tensor, k: int = match.K,
                   coeffs: int = match.ENVELOPE_COEFFS) -> torch.Tensor:
    """(B, n_mels, T) outputs, (B, n_mels, S) mels of the voice each should have -> scalar: what
    vc.match does after the decoder at inference, as a loss on the decoder. Each output speech frame
    (within match.SPEECH_DB of its loudest) is compared, envelope to envelope, with the mean of its
    ``k`` nearest speech frames of its bank."""
    terms = []
    for p, b in zip(pred, bank):                  # (n_mels, T), (n_mels, S)
        shift = match.envelope_shift(p, match.speech_frames(b.detach().float()), k, coeffs)
        terms.append(shift[:, match.speech_mask(p.detach().float())].abs().mean())
    return torch.stack(terms).mean()
