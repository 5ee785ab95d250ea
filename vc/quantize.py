"""A vector-quantised content code (the VQ-VAE bottleneck of van den Oord et al. 2017, as VQVC and
VQVC+ use it for voice conversion, Wu and Lee 2020): each frame of the instance-normalised content
code is replaced by the nearest of ``codes`` learned vectors. A finite set of codes can hold what is
said, and little of how this voice says it, which the decoder must then take from the speaker vector.

Shapes: the code (B, D, T') in and out; the codebook (codes, D).

Each code follows the frames it stands for by exponential moving averages (the VQ-VAE-2 and
SoundStream recipe: :meth:`VectorQuantizer.update`, called by the model's training pass), and a
code that no frame has taken for a while restarts at a random frame of the batch; the encoder
learns by the straight-through estimator plus a commitment term that keeps its frames near their
codes. A run that starts from a model without the codebook fills it first from k-means over
content codes of training batches (:func:`kmeans`, :meth:`VectorQuantizer.start`), so that every
code starts where frames are. (A first version learned the codebook by gradient at the model's
learning rate, too slowly to follow the encoder: in v13's recipe with 256 codes, at step 150 of the
same batches, its frames sat farther from their codes (mean squared distance 0.74 and rising,
against 0.55), used fewer of them (perplexity 71 against 96) and were rebuilt worse (L1 0.89
against 0.82).)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """(B, D, T') -> (quantised (B, D, T'), loss): the loss is ``beta`` x the commitment term (the
    mean squared distance of the frames from their codes; 0 outside training). The codebook is a
    buffer that only :meth:`update` and :meth:`start` change."""

    def __init__(self, codes: int, dim: int, beta: float = 0.25, decay: float = 0.99, dead: float = 0.03):
        super().__init__()
        self.beta, self.decay, self.dead = beta, decay, dead
        self.register_buffer("codebook", torch.randn(codes, dim))
        self.register_buffer("count", torch.ones(codes))             # moving average of frames per code
        self.register_buffer("total", self.codebook.clone())         # ... and of their sum

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, T') -> (B, T') index of each frame's nearest code (Euclidean)."""
        flat = z.detach().float().transpose(1, 2)                     # (B, T', D)
        book = self.codebook.float()
        dist = (flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ book.T + book.pow(2).sum(-1))
        return dist.argmin(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.embedding(self.nearest(z), self.codebook).transpose(1, 2).to(z.dtype)   # (B, D, T')
        loss = self.beta * F.mse_loss(z.float(), q.float()) if self.training else z.new_zeros(())
        return z + (q - z).detach(), loss

    @torch.no_grad()
    def start(self, codebook: torch.Tensor):
        """Set the codes (codes, D), each as if it had taken one frame."""
        self.codebook.copy_(codebook)
        self.total.copy_(codebook)
        self.count.fill_(1.0)

    @torch.no_grad()
    def update(self, z: torch.Tensor):
        """One training step's frames (B, D, T') move their codes: the moving averages of the count
        and the sum of the frames each code takes, their ratio the code. A code whose count fell
        below ``dead`` restarts at a random frame of ``z``."""
        flat = z.detach().float().transpose(1, 2).reshape(-1, z.shape[1])   # (N, D)
        owner = self.nearest(z).flatten()
        codes = self.codebook.shape[0]
        self.count.mul_(self.decay).add_(torch.bincount(owner, minlength=codes).float(), alpha=1 - self.decay)
        self.total.mul_(self.decay).index_add_(0, owner, flat, alpha=1 - self.decay)
        self.codebook.copy_(self.total / self.count.clamp(min=1e-5)[:, None])
        dead = self.count < self.dead
        if dead.any():
            picks = flat[torch.randint(flat.shape[0], (int(dead.sum()),), device=flat.device)]
            self.codebook[dead], self.total[dead], self.count[dead] = picks, picks, 1.0


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
