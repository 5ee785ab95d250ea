"""Training objectives.

reconstruction   L1 between the decoded and the original log-mel, (B, n_mels, T) each.
spectral_detail  L1 between their differences along the mel axis: the harmonic peaks and valleys
                 that an averaged (blurred) spectrum loses and a speaker verifier listens to.
classifier       cross-entropy of the adversary on (detached) content codes: it learns to name
                 the speaker of a content code.
adversarial      what the encoder minimises to defeat the adversary, logits (B, n_speakers):
                 ``uniform``  KL(uniform || p): push the adversary's belief to "anyone" (0 at uniform);
                 ``neg_ce``   minus the cross-entropy (Chou et al. 2018): make it wrong; unbounded,
                              so it is clipped at log(n_speakers) to stay stable.
cosine_distance  1 - cosine of (B, D) rows: speaker vectors (cycle) and d-vectors (distillation);
                 of (B, T, D) frames: Whisper features (vc.asr_judge).
frozen           a module's output with its weights held fixed (adversary, read-back encoders).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reconstruction(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def spectral_detail(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.diff(dim=1) - target.diff(dim=1)).abs().mean()


def classifier(logits: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, speakers)


def adversarial(logits: torch.Tensor, speakers: torch.Tensor, kind: str = "uniform") -> torch.Tensor:
    if kind == "uniform":
        return -F.log_softmax(logits, dim=1).mean(dim=1).mean() - math.log(logits.shape[1])
    if kind == "neg_ce":
        return -torch.clamp(F.cross_entropy(logits, speakers), max=math.log(logits.shape[1]))
    raise ValueError(f"unknown adversarial loss '{kind}' (uniform or neg_ce)")


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
