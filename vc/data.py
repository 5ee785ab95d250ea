"""Training data: where utterances come from, their cached features, and batches of segments.

Sources, one interface (``find_utterances``):
  * a manifest ``.tsv`` in the format of ``shared/data/manifest.tsv`` (path, speaker, split, ...);
  * a VCTK corpus root (0.80 or 0.92 layout, see :mod:`vc.vctk`);
  * a plain folder with one sub-folder of audio per speaker.

Features are computed once per file and cached as ``.npy`` (written to a temporary name, then
renamed: an interrupted run never leaves a half-written file under a valid name; a file that
does not load is recomputed). Batches hold ``batch_size`` different speakers.

Shapes: a cached feature is (n_mels, frames) float32; a batch is (B, n_mels, segment_frames).
"""
from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from .audio import SUPPORTED, AudioError, load_audio
from .features import MelConfig, mel_spectrogram
from .files import atomic_open


@dataclass(frozen=True)
class Utterance:
    path: str          # absolute path of the audio file
    speaker: str
    split: str = "train"
    text: str = ""
    gender: str = ""


def read_manifest(path) -> list[Utterance]:
    """Rows of a manifest TSV; relative paths resolve against the manifest's folder."""
    path = Path(path)
    root = path.parent
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and not {"path", "speaker"} <= set(rows[0]):
        raise ValueError(f"{path}: a manifest needs the columns 'path' and 'speaker'")
    return [Utterance(path=str((root / r["path"]).resolve()), speaker=r["speaker"],
                      split=r.get("split") or "train", text=r.get("text") or "",
                      gender=r.get("gender") or "") for r in rows]



def scan_speaker_folders(root) -> list[Utterance]:
    """``root/<speaker>/**/<audio>``: every sub-folder is one speaker."""
    root = Path(root)
    out = []
    for spk in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(spk.rglob("*")):
            if f.is_file() and f.suffix.lower() in SUPPORTED:
                out.append(Utterance(path=str(f.resolve()), speaker=spk.name))
    return out


def find_utterances(source, split: str | None = None) -> list[Utterance]:
    """Utterances of a manifest, a VCTK root or a speaker-folder tree; optionally one split."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.is_file():
        utts = read_manifest(source)
    elif (source / "manifest.tsv").is_file():
        utts = read_manifest(source / "manifest.tsv")
    else:
        from . import vctk
        utts = vctk.prepare(source) if vctk.is_vctk(source) else scan_speaker_folders(source)
    if split:
        utts = [u for u in utts if u.split == split]
    if not utts:
        raise ValueError(f"{source}: no utterances found" + (f" in split '{split}'" if split else ""))
    return utts


# -- feature cache -----------------------------------------------------------------------------

def cache_path(cache_dir, utt_path: str, cfg: MelConfig) -> Path:
    st = os.stat(utt_path)
    key = f"{os.path.abspath(utt_path)}|{st.st_size}|{st.st_mtime_ns}|{sorted(cfg.to_dict().items())}"
    h = hashlib.sha1(key.encode()).hexdigest()
    return Path(cache_dir) / h[:2] / f"{h}.npy"


def _save_npy_atomic(path: Path, array: np.ndarray):
    with atomic_open(path, "wb", suffix=".tmp") as f:
        np.save(f, array)


def load_cached(path: Path) -> np.ndarray | None:
    """The cached array, or None if it is missing or unreadable (truncated, corrupt)."""
    try:
        arr = np.load(path, allow_pickle=False)
        return arr if arr.ndim == 2 and np.isfinite(arr).all() else None
    except (OSError, ValueError, EOFError):
        return None


def compute_features(utt_path: str, cfg: MelConfig) -> np.ndarray:
    wav = load_audio(utt_path, cfg.sample_rate, max_seconds=0)
    return mel_spectrogram(wav, cfg).numpy()


def _feature_job(args):
    utt_path, cache_dir, cfg = args
    torch.set_num_threads(1)
    path = cache_path(cache_dir, utt_path, cfg)
    if load_cached(path) is not None:
        return utt_path, None
    try:
        _save_npy_atomic(path, compute_features(utt_path, cfg))
        return utt_path, None
    except AudioError as e:
        return utt_path, str(e)
    except Exception as e:  # an unreadable file must not stop the cache build
        return utt_path, f"{utt_path}: {type(e).__name__}: {e}"


def build_cache(utterances, cache_dir, cfg: MelConfig = MelConfig(), workers: int = 0,
                progress: bool = True) -> tuple[list[Utterance], list[str]]:
    """Make sure every utterance has cached features. Returns (usable utterances, problems).
    Safe to interrupt and re-run: finished files are kept, half-written ones never count."""
    workers = workers or os.cpu_count() or 1
    jobs = [(u.path, str(cache_dir), cfg) for u in utterances]
    problems: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc="features", unit="file", disable=not progress)
    if workers == 1:
        results = map(_feature_job, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_feature_job, jobs, chunksize=4)
    for utt_path, problem in results:
        if problem:
            problems[utt_path] = problem
        bar.update()
    bar.close()
    if workers != 1:
        pool.shutdown()
    return [u for u in utterances if u.path not in problems], list(problems.values())


# -- batches -----------------------------------------------------------------------------------

class Batch(NamedTuple):
    """segments (B, n_mels, F) to rebuild; references (B, n_mels, F): another segment of the
    same speaker each; speakers (B,) speaker indices; reference_paths: the utterance of each
    reference (keys of per-utterance targets such as d-vectors)."""
    segments: torch.Tensor
    references: torch.Tensor
    speakers: torch.Tensor
    reference_paths: list


class SegmentSampler:
    """Random fixed-length segments of ``batch_size // per_speaker`` different speakers, each
    speaker giving ``per_speaker`` consecutive items of the batch.

    Each item is a pair: a segment to reconstruct, and a *different* segment of the same speaker
    (another utterance when the speaker has one) from which the speaker vector is computed, so
    that the speaker vector cannot carry the words.
    """

    def __init__(self, utterances, cache_dir, cfg: MelConfig, segment_frames: int, seed: int = 0):
        self.segment_frames = segment_frames
        self.by_speaker: dict[str, list[np.ndarray]] = {}
        self.paths: dict[str, list[str]] = {}
        for u in utterances:
            arr = load_cached(cache_path(cache_dir, u.path, cfg))
            if arr is not None and arr.shape[1] >= segment_frames // 2:
                self.by_speaker.setdefault(u.speaker, []).append(arr)
                self.paths.setdefault(u.speaker, []).append(u.path)
        self.speakers = sorted(self.by_speaker)
        if len(self.speakers) < 2:
            raise ValueError("training needs at least two speakers with usable audio")
        self.rng = np.random.default_rng(seed)

    def _crop(self, arr: np.ndarray) -> np.ndarray:
        n = self.segment_frames
        if arr.shape[1] < n:   # short clip: pad by repeating its edge
            return np.pad(arr, ((0, 0), (0, n - arr.shape[1])), mode="edge")
        start = self.rng.integers(0, arr.shape[1] - n + 1)
        return arr[:, start:start + n]

    def batch(self, batch_size: int, per_speaker: int = 1) -> Batch:
        n_spk = min(max(1, batch_size // per_speaker), len(self.speakers))
        chosen = self.rng.choice(len(self.speakers), size=n_spk, replace=False)
        segs, refs, idx, ref_paths = [], [], [], []
        for i in chosen:
            utts, paths = self.by_speaker[self.speakers[i]], self.paths[self.speakers[i]]
            for _ in range(per_speaker):
                a = self.rng.integers(len(utts))
                b = (a + self.rng.integers(1, len(utts))) % len(utts) if len(utts) > 1 else a
                segs.append(self._crop(utts[a]))
                refs.append(self._crop(utts[b]))
                idx.append(i)
                ref_paths.append(paths[b])
        return Batch(torch.from_numpy(np.stack(segs)), torch.from_numpy(np.stack(refs)),
                     torch.from_numpy(np.asarray(idx, dtype=np.int64)), ref_paths)

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict):
        self.rng.bit_generator.state = state
