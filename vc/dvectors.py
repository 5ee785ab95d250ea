"""Resemblyzer d-vectors of training utterances: a target for distilling a speaker space learned
from thousands of speakers into vc's own speaker encoder (training only; inference never needs
Resemblyzer).

Resemblyzer (GE2E, Wan et al. 2018) ships its weights inside its PyPI wheel, so this works
offline: ``pip install --no-deps resemblyzer webrtcvad-wheels``. Each utterance's d-vector is
computed once and cached next to its features (written atomically, like the feature cache).

Shapes: a d-vector is (256,) float32 with unit norm; ``lookup`` gives (B, 256).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from .data import _save_npy_atomic, cache_path
from .features import MelConfig

DIM = 256
SAMPLE_RATE = 16000
# the cache key of a d-vector: the feature key of a config no feature uses
_KEY = MelConfig(sample_rate=SAMPLE_RATE, n_fft=400, hop_length=160, win_length=400, n_mels=40,
                 f_min=0.0, f_max=8000.0)


def _encoder():
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as e:
        raise RuntimeError(f"dvector_weight > 0 needs resemblyzer ({e}): "
                           "pip install --no-deps resemblyzer webrtcvad-wheels") from None
    return VoiceEncoder("cpu", verbose=False)


def dvector_path(cache_dir, utt_path: str):
    return cache_path(cache_dir, utt_path, _KEY).with_suffix(".dvec.npy")


def embed_file(encoder, utt_path: str) -> np.ndarray:
    from resemblyzer import preprocess_wav

    from .audio import load_audio
    wav = load_audio(utt_path, SAMPLE_RATE, max_seconds=0)
    trimmed = preprocess_wav(wav)
    if trimmed.size < SAMPLE_RATE // 2:       # the VAD found (almost) no voice: use it all
        trimmed = wav
    return encoder.embed_utterance(trimmed.astype(np.float32)).astype(np.float32)


def build(utterances, cache_dir, progress: bool = True) -> dict[str, np.ndarray]:
    """d-vector of every utterance path (computed once, then read from the cache)."""
    out, todo = {}, []
    for u in utterances:
        v = _load(dvector_path(cache_dir, u.path))
        if v is None:
            todo.append(u)
        else:
            out[u.path] = v
    if todo:
        enc = _encoder()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)           # the small LSTM gains nothing from more threads
        try:
            for u in tqdm(todo, desc="d-vectors", unit="file", disable=not progress):
                v = embed_file(enc, u.path)
                _save_npy_atomic(dvector_path(cache_dir, u.path), v)
                out[u.path] = v
        finally:
            torch.set_num_threads(threads)
    return out


def _load(path) -> np.ndarray | None:
    try:
        v = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return v if v.shape == (DIM,) and np.isfinite(v).all() else None


def lookup(table: dict[str, np.ndarray], paths) -> torch.Tensor:
    """(B, 256) d-vectors of the utterances ``paths``."""
    return torch.from_numpy(np.stack([table[p] for p in paths]))
