"""Pictures people would rather look at than read: spectrograms, split codes, curves.

Every function returns a matplotlib Figure (Agg backend, no screen needed); the caller saves it
(``fig.savefig(path)``) or hands it to TensorBoard / the web page.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def mel_figure(mels: dict, hop_seconds: float = 256 / 22050, vmin: float = -11.5, vmax: float = 2.0):
    """Log-mels (n_mels, T) stacked one above the other on a shared time axis."""
    fig, axes = plt.subplots(len(mels), 1, figsize=(10, 1.9 * len(mels)), squeeze=False, sharex=True)
    longest = max(_np(m).shape[-1] for m in mels.values()) * hop_seconds
    for ax, (title, mel) in zip(axes[:, 0], mels.items()):
        m = _np(mel)
        ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                  extent=(0, m.shape[-1] * hop_seconds, 0, m.shape[0]), interpolation="nearest")
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("mel bin")
        ax.set_xlim(0, longest)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def code_figure(content_a, content_b, speaker_a, speaker_b, labels=("A", "B"),
                code_seconds: float = 4 * 256 / 22050):
    """The split code: content over time for both clips, and the two speaker vectors side by side
    with their cosine distance. content (content_dim, T'), speaker (speaker_dim,)."""
    ca, cb, sa, sb = map(_np, (content_a, content_b, speaker_a, speaker_b))
    cos = float(np.dot(sa, sb) / (np.linalg.norm(sa) * np.linalg.norm(sb) + 1e-9))
    fig = plt.figure(figsize=(10, 4.6))
    grid = fig.add_gridspec(2, 2, width_ratios=[5, 1.3])
    for row, (c, lab) in enumerate(((ca, labels[0]), (cb, labels[1]))):
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(c, origin="lower", aspect="auto", cmap="coolwarm", vmin=-3, vmax=3,
                  extent=(0, c.shape[-1] * code_seconds, 0, c.shape[0]), interpolation="nearest")
        ax.set_title(f"content code of {lab} (what is said)", fontsize=10, loc="left")
        ax.set_ylabel("channel")
    ax.set_xlabel("time (s)")
    ax = fig.add_subplot(grid[:, 1])
    both = np.stack([sa, sb], axis=1)
    lim = float(np.abs(both).max()) or 1.0
    ax.imshow(both, aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([0, 1], labels)
    ax.set_title(f"speaker vectors\n(who says it)\ncosine {cos:.2f}", fontsize=10)
    ax.set_ylabel("dimension")
    fig.tight_layout()
    return fig


def curves_figure(metrics_jsonl, keys=("loss/reconstruction", "val/reconstruction", "adversary/accuracy")):
    """Training curves from a run's metrics.jsonl, one panel per key."""
    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, lw=1)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
