"""Speaker similarity with Resemblyzer (GE2E d-vectors), and the verification threshold.

Protocol of the Voice-conversion-evaluation toolkit (used by AdaIN-VC, FragmentVC, S2VC): the
cosine of d-vectors; a conversion is *accepted* as the target speaker when its similarity to the
target clip reaches a threshold set at the equal-error point of same-speaker vs different-speaker
trials of real utterances. (The toolkit samples trials with replacement, so an utterance can be
paired with itself; here every unordered pair of distinct utterances is one trial.)

Shapes: waveforms are 1-D float32 at 16 kHz; an embedding is (256,) with unit norm.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
_encoder = None


def encoder():
    """The Resemblyzer encoder, loaded once per process (its weights ship inside the wheel;
    it loads them with torch.load's default, which is weights_only=True from torch 2.6 on)."""
    global _encoder
    if _encoder is None:
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as e:
            raise RuntimeError(f"speaker similarity needs resemblyzer ({e}): "
                               "pip install --no-deps resemblyzer webrtcvad-wheels") from None
        _encoder = VoiceEncoder("cpu", verbose=False)
    return _encoder


def embed(wav: np.ndarray) -> np.ndarray:
    """(T,) 16 kHz -> (256,) unit vector. Resemblyzer's own conditioning (volume, VAD trimming of
    long pauses); audio the VAD finds no voice in is embedded untrimmed. An all-zero d-vector
    (possible for noise: the encoder ends in a ReLU) stays zero and has cosine 0 to anything.
    Runs on one thread: the small LSTM gains nothing from more, and on a busy machine extra
    threads spin-wait (measured on a loaded 2-core machine: 30 s instead of 0.7 s per clip
    with 2 threads)."""
    import torch
    from resemblyzer import preprocess_wav
    wav = np.asarray(wav, dtype=np.float32)
    trimmed = preprocess_wav(wav)
    if trimmed.size < SAMPLE_RATE // 2:
        trimmed = wav
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        e = encoder().embed_utterance(trimmed.astype(np.float32))
    finally:
        torch.set_num_threads(threads)
    return np.nan_to_num(e).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


def trials(embeddings: np.ndarray, speakers) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of every unordered pair of distinct utterances -> (same-speaker, different-speaker).
    embeddings (N, D); speakers: N labels."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sims = e @ e.T
    spk = np.asarray(speakers)
    iu = np.triu_indices(len(spk), k=1)
    same = spk[iu[0]] == spk[iu[1]]
    return sims[iu][same], sims[iu][~same]


def eer_threshold(same, different) -> tuple[float, float]:
    """The equal error rate and its threshold: accept when score >= threshold.

    FAR(t) = share of different-speaker scores >= t, FRR(t) = share of same-speaker scores < t,
    evaluated at every observed score; the crossing is interpolated linearly between the two
    neighbouring thresholds. When the lists are separable the threshold is midway between them.
    """
    same, diff = np.asarray(same, dtype=np.float64), np.asarray(different, dtype=np.float64)
    if same.size == 0 or diff.size == 0:
        raise ValueError("the threshold needs both same-speaker and different-speaker trials")
    t = np.unique(np.concatenate([same, diff]))
    t = np.append(t, t[-1] + 1e-6)                      # a threshold that rejects everything
    far = 1.0 - np.searchsorted(np.sort(diff), t, side="left") / diff.size
    frr = np.searchsorted(np.sort(same), t, side="left") / same.size
    d = far - frr                                        # non-increasing in t
    k = int(np.argmax(d <= 0))
    if k == 0:
        return float(far[0]), float(t[0])
    if d[k] == 0:                                        # exact tie: middle of the interval
        return float(far[k]), float((t[k - 1] + t[k]) / 2)
    a = d[k - 1] / (d[k - 1] - d[k])
    eer = far[k - 1] + a * (far[k] - far[k - 1])
    return float(eer), float(t[k - 1] + a * (t[k] - t[k - 1]))


def calibrate(embeddings: np.ndarray, speakers) -> dict:
    """Threshold at the EER of real utterances: {threshold, eer, n_same, n_different, ...}."""
    same, diff = trials(embeddings, speakers) if len(speakers) >= 2 else (np.zeros(0), np.zeros(0))
    if same.size == 0 or diff.size == 0:
        raise ValueError(f"cannot calibrate: {same.size} same-speaker and {diff.size} "
                         "different-speaker trials (need utterances of two or more speakers, "
                         "some speaker with two or more)")
    eer, threshold = eer_threshold(same, diff)
    return {"threshold": threshold, "eer": eer, "n_same": int(same.size), "n_different": int(diff.size),
            "n_utterances": int(len(speakers)), "n_speakers": int(len(set(speakers))),
            "same_mean": float(same.mean()), "different_mean": float(diff.mean())}
