"""A vector-quantised content code (the VQ-VAE bottleneck of van den Oord et al. 2017, as VQVC and
VQVC+ use it for voice conversion, Wu and Lee 2020): each frame of the instance-normalised content
code is replaced by the nearest of ``codes`` learned vectors. A finite set of codes can hold what is
said, and little of how this voice says it, which the decoder must then take from the speaker vector.

Shapes: the code (B, D, T') in and out; the codebook (codes, D).

The codebook learns by gradient (its term of :meth:`VectorQuantizer.forward`'s loss pulls each
used vector toward the frames it stands for) and the encoder by the straight-through estimator,
plus a commitment term that keeps its frames near their codes. A run that starts from a model
without the codebook fills it first from k-means over content codes of training batches
(:func:`kmeans`), so that every vector starts where frames are.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """(B, D, T') -> (quantised (B, D, T'), loss): the loss is codebook + ``beta`` x commitment
    (both mean squared errors over the code's elements; 0 outside training)."""

    def __init__(self, codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        self.codebook = nn.Parameter(torch.randn(codes, dim))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, T') -> (B, T') index of each frame's nearest code (Euclidean)."""
        flat = z.detach().float().transpose(1, 2)                     # (B, T', D)
        book = self.codebook.detach().float()
        dist = (flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ book.T + book.pow(2).sum(-1))
        return dist.argmin(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.embedding(self.nearest(z), self.codebook).transpose(1, 2).to(z.dtype)   # (B, D, T')
        loss = z.new_zeros(())
        if self.training:
            loss = F.mse_loss(q.float(), z.detach().float()) + self.beta * F.mse_loss(z.float(), q.detach().float())
        return z + (q - z).detach(), loss


def perplexity(indices: torch.Tensor, codes: int) -> float:
    """How many codes the frames use, as 2 ** (entropy in bits of their histogram): ``codes`` if
    evenly, 1 if all frames take one."""
    p = torch.bincount(indices.flatten(), minlength=codes).float()
    p = p / p.sum()
    return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))


@torch.no_grad()
def kmeans(frames: torch.Tensor, k: int, iters: int = 10, seed: int = 0) -> torch.Tensor:
    """(N, D) frames -> (k, D) centroids by Lloyd's algorithm from k distinct random frames; a
    centroid that loses all its frames takes a random frame again. Needs N >= k."""
    frames = frames.float()
    if frames.shape[0] < k:
        raise ValueError(f"k-means needs at least {k} frames, got {frames.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    centres = frames[torch.randperm(frames.shape[0], generator=g)[:k]].clone()
    for _ in range(iters):
        dist = frames.pow(2).sum(-1, keepdim=True) - 2 * frames @ centres.T + centres.pow(2).sum(-1)
        owner = dist.argmin(-1)
        counts = torch.bincount(owner, minlength=k).float()
        sums = torch.zeros_like(centres).index_add_(0, owner, frames)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            centres[empty] = frames[torch.randint(frames.shape[0], (int(empty.sum()),), generator=g)]
    return centres
