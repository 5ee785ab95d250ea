"""Training data: where utterances come from, and their cached features.

Sources, one interface (``find_utterances``):
  * a manifest ``.tsv`` in the format of ``shared/data/manifest.tsv`` (path, speaker, split, ...);
  * a VCTK corpus root (0.80 or 0.92 layout, see :mod:`vc.vctk`);
  * a plain folder with one sub-folder of audio per speaker.

Features are computed once per file and cached as ``.npy`` (written to a temporary name, then
renamed: an interrupted run never leaves a half-written file under a valid name; a file that
does not load is recomputed). Training then packs them once into a feature store
(:mod:`vc.feature_store`) that every process memory-maps read-only: :func:`training_store`.
Batches of segments are drawn from them by :mod:`vc.batches`.

Shapes: a cached feature is (n_mels, frames) float32 (a ``pitch`` one (2, frames), frame for
frame with the mel).
"""
from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import vctk
from .audio import SUPPORTED, AudioError, load_audio
from .feature_store import FeatureStore, Item, digest
from .features import MelConfig, mel_spectrogram
from .files import atomic_open
from .pitch import PITCH_CHANNELS, pitch_features

KINDS = ("mel", "pitch")     # what a cached feature is: a log-mel, or vc.pitch features


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
    elif vctk.is_vctk(source):
        utts = [Utterance(path=r.path, speaker=r.speaker, split=r.split, text=r.text, gender=r.gender)
                for r in vctk.prepare(source)]
    else:
        utts = scan_speaker_folders(source)
    if split:
        utts = [u for u in utts if u.split == split]
    if not utts:
        raise ValueError(f"{source}: no utterances found" + (f" in split '{split}'" if split else ""))
    return utts


# -- feature cache -----------------------------------------------------------------------------

def split_validation(utts, per_speaker: int, seed: int):
    """Hold out ``per_speaker`` utterances of every speaker that has at least 3."""
    rng = np.random.default_rng(seed)
    by_spk: dict[str, list] = {}
    for u in sorted(utts, key=lambda u: u.path):
        by_spk.setdefault(u.speaker, []).append(u)
    train, val = [], []
    for spk_utts in by_spk.values():
        held = set(rng.choice(len(spk_utts), per_speaker, replace=False).tolist()) \
            if per_speaker and len(spk_utts) >= 3 else set()
        for i, u in enumerate(spk_utts):
            (val if i in held else train).append(u)
    return train, val


def cache_path(cache_dir, utt_path: str, cfg: MelConfig, kind: str = "mel") -> Path:
    st = os.stat(utt_path)
    key = f"{os.path.abspath(utt_path)}|{st.st_size}|{st.st_mtime_ns}|{sorted(cfg.to_dict().items())}"
    if kind != "mel":
        key += f"|{kind}"
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


def compute_features(utt_path: str, cfg: MelConfig, kind: str = "mel") -> np.ndarray:
    """The ``kind`` features (see KINDS) of one audio file."""
    wav = load_audio(utt_path, cfg.sample_rate, max_seconds=0)
    if kind == "pitch":
        return pitch_features(wav, cfg)
    return mel_spectrogram(wav, cfg).numpy()


def _feature_job(args):
    utt_path, cache_dir, cfg, kind = args
    torch.set_num_threads(1)
    path = cache_path(cache_dir, utt_path, cfg, kind)
    if load_cached(path) is not None:
        return utt_path, None
    try:
        _save_npy_atomic(path, compute_features(utt_path, cfg, kind))
        return utt_path, None
    except AudioError as e:
        return utt_path, str(e)
    except Exception as e:  # an unreadable file must not stop the cache build
        return utt_path, f"{utt_path}: {type(e).__name__}: {e}"


# Worker processes start from a clean server process, never forked from the caller: under
# torchrun the caller holds the process group's threads and sockets, which a fork copies mid-use.
_POOL_CONTEXT = multiprocessing.get_context("forkserver")


def build_cache(utterances, cache_dir, cfg: MelConfig = MelConfig(), workers: int = 0,
                progress: bool = True, kind: str = "mel") -> tuple[list[Utterance], list[str]]:
    """Make sure every utterance has cached ``kind`` features. Returns (usable utterances, problems).
    Safe to interrupt and re-run: finished files are kept, half-written ones never count."""
    if kind not in KINDS:
        raise ValueError(f"feature kind: one of {KINDS}, not {kind!r}")
    workers = workers or os.cpu_count() or 1
    jobs = [(u.path, str(cache_dir), cfg, kind) for u in utterances]
    problems: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc="features" if kind == "mel" else kind, unit="file", disable=not progress)
    if workers == 1:
        results = map(_feature_job, jobs)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=_POOL_CONTEXT)
        results = pool.map(_feature_job, jobs, chunksize=4)
    for utt_path, problem in results:
        if problem:
            problems[utt_path] = problem
        bar.update()
    bar.close()
    if workers != 1:
        pool.shutdown()
    return [u for u in utterances if u.path not in problems], list(problems.values())


# -- the training feature store ----------------------------------------------------------------

def training_store(utterances, cache_dir, cfg: MelConfig = MelConfig(), dtype: str = "float32",
                   workers: int = 0, progress: bool = True, kind: str = "mel") -> FeatureStore:
    """The feature store of ``utterances`` under ``cache_dir/stores/``: opened when it is
    complete and up to date (no feature file is read then), else the per-file cache is completed
    (:func:`build_cache`, whose problems are printed) and the store (re)built from it. Its key
    covers every utterance's path, speaker, audio size and time (through :func:`cache_path`),
    the mel settings and the dtype, so a store of other or changed audio is never read.
    ``kind="pitch"``: the store of their vc.pitch features (a store of its own, beside the mels')."""
    utterances = list(utterances)
    cached = [cache_path(cache_dir, u.path, cfg, kind) for u in utterances]
    key = digest("training-store", dtype, sorted(cfg.to_dict().items()),
                 [(u.path, u.speaker, c.name) for u, c in zip(utterances, cached)])
    name = digest("store-name", sorted((u.path, u.speaker) for u in utterances))[:16]
    if kind != "mel":
        name = f"{name}-{kind}"

    def items():
        ok, problems = build_cache(utterances, cache_dir, cfg, workers=workers, progress=progress, kind=kind)
        for p in problems:
            print(f"skipped {p}")
        usable = {u.path for u in ok}
        return [Item(u.path, u.speaker, str(c)) for u, c in zip(utterances, cached) if u.path in usable]

    rows = PITCH_CHANNELS if kind == "pitch" else cfg.n_mels
    return FeatureStore.open_or_build(Path(cache_dir) / "stores" / name, key, items, rows, dtype,
                                      workers=workers, progress=progress)


class InMemoryFeatures:
    """The features of ``utterances`` read from the per-file cache into this process's memory
    (what training did before the feature store; kept for comparisons and small jobs). The same
    reading interface as :class:`vc.feature_store.FeatureStore`."""

    def __init__(self, utterances, cache_dir, cfg: MelConfig = MelConfig()):
        self.arrays, self.paths, self.speakers = [], [], []
        for u in utterances:
            arr = load_cached(cache_path(cache_dir, u.path, cfg))
            if arr is not None:
                self.arrays.append(arr)
                self.paths.append(u.path)
                self.speakers.append(u.speaker)
        self.frames = np.asarray([a.shape[1] for a in self.arrays], dtype=np.int64)

    def __len__(self):
        return len(self.arrays)

    def segment(self, i: int, start: int, n: int) -> np.ndarray:
        return self.arrays[i][:, start:start + n]

    def feature(self, i: int) -> np.ndarray:
        return self.arrays[i]
