"""Disentanglement probes: how well can a small classifier tell the speaker from a frozen code?

For each representation of an utterance (pooled over time), a multinomial logistic regression
(torch, L-BFGS, L2, standardised inputs) is trained on some utterances of the evaluation
speakers and tested on held-out utterances of the same speakers:

  * content code: per channel mean, std, skewness, kurtosis, and the channel correlations. The
    content encoder ends with an instance norm, so mean and std are 0 and 1 by construction: the
    higher moments and correlations are what could still carry the speaker;
  * speaker vector (what it is for: should be high);
  * log-mel mean and std per band (the input, for scale).

Low content accuracy (near chance) and high speaker accuracy = a good split.
Shapes: content (content_dim, frames), speaker (speaker_dim,), mel (n_mels, frames).
"""
from __future__ import annotations

import numpy as np
import torch


def content_stats(content: torch.Tensor) -> np.ndarray:
    """(C, T) -> (4C + C(C-1)/2,) pooled statistics."""
    x = content.detach().double().cpu()
    mu, sd = x.mean(1), x.std(1, unbiased=False).clamp_min(1e-8)
    z = (x - mu[:, None]) / sd[:, None]
    corr = (z @ z.T / x.shape[1])[tuple(torch.triu_indices(x.shape[0], x.shape[0], 1))]
    return torch.cat([mu, sd, (z ** 3).mean(1), (z ** 4).mean(1), corr]).numpy()


def mel_stats(mel: torch.Tensor) -> np.ndarray:
    """(n_mels, T) -> (2 n_mels,)."""
    x = mel.detach().double().cpu()
    return torch.cat([x.mean(1), x.std(1, unbiased=False)]).numpy()


def split_by_speaker(speakers) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train / test masks: per speaker (in input order), alternate utterances;
    speakers with a single utterance are left out of both."""
    speakers = list(speakers)
    train, test = np.zeros(len(speakers), bool), np.zeros(len(speakers), bool)
    seen: dict[str, list[int]] = {}
    for k, s in enumerate(speakers):
        seen.setdefault(s, []).append(k)
    for idx in seen.values():
        if len(idx) >= 2:
            for n, k in enumerate(idx):
                (train if n % 2 == 0 else test)[k] = True
    return train, test


def logistic_accuracy(x_train, y_train, x_test, y_test, l2: float = 1e-2, steps: int = 200) -> float:
    """Test accuracy of a softmax regression trained on (x_train (N, D), y_train (N,) ints)."""
    xtr, xte = torch.as_tensor(x_train, dtype=torch.float64), torch.as_tensor(x_test, dtype=torch.float64)
    mean, std = xtr.mean(0), xtr.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))     # constant features carry nothing
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    ytr = torch.as_tensor(y_train, dtype=torch.long)
    n_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    w = torch.zeros(xtr.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xtr @ w + b, ytr) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xte @ w + b).argmax(1).numpy()
    return float(np.mean(pred == np.asarray(y_test)))


def speaker_probes(features: dict[str, np.ndarray], speakers) -> dict:
    """features: name -> (N, D) array, one row per utterance; speakers: N labels.
    -> {'n_speakers', 'n_train', 'n_test', 'chance', name: accuracy, ...} or {'skipped': why}."""
    train, test = split_by_speaker(speakers)
    names = sorted({s for s, t in zip(speakers, train | test) if t})
    if len(names) < 2:
        return {"skipped": "needs two or more speakers with two or more utterances each"}
    index = {s: k for k, s in enumerate(names)}
    y = np.array([index.get(s, -1) for s in speakers])
    counts = np.bincount(y[test], minlength=len(names))
    out = {"n_speakers": len(names), "n_train": int(train.sum()), "n_test": int(test.sum()),
           "chance": float(counts.max() / counts.sum())}   # majority class of the test set
    for name, x in features.items():
        x = np.asarray(x)
        out[name] = logistic_accuracy(x[train], y[train], x[test], y[test])
    return out
