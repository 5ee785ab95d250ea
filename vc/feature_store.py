"""The training feature store: every utterance's features packed once into a few shard files
that every training process memory-maps read-only (the page cache holds them once per machine,
however many processes read them).

Layout of a store folder::

    shard-00000-<h>.f32   (or .f16)  the frames of consecutive utterances, time-major:
                                     (frames, n_mels) blocks one after the other
    shard-00000-<h>.json             the shard's own record (its utterances, frames, bytes),
                                     written after the shard: a finished shard survives a crash
    store.json                       the commit: format, key, n_mels, dtype, shards and their
                                     sizes, and the index (path, speaker, shard, offset, frames);
                                     written last, atomically

A store is valid only when ``store.json`` reads, its format and ``key`` (a digest of what it was
built from, given by the caller) are the expected ones, and every shard has exactly the size
recorded. Anything else (a missing, truncated or stale store) is rebuilt with a message, never
read. Building is parallel (one process per shard), atomic (temporary names, then rename) and
resumable (finished shards whose record matches are kept), and it holds a lock so that two
processes never build the same store at once.

Time-major blocks make a training segment one contiguous read; :meth:`FeatureStore.segment`
gives it back as (n_mels, frames) float32, the layout of the per-file cache (vc.data).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np

from .files import atomic_open, atomic_path

FORMAT = 1
DTYPES = {"float32": ".f32", "float16": ".f16"}
SHARD_BYTES = 512 * 2 ** 20      # a new shard after this many bytes
RELEASE_BYTES = 64 * 2 ** 20     # drop this process's mapped pages after reading this much


class StoreInvalid(Exception):
    """A store that must not be read (missing, unfinished, truncated, stale): the reason."""


@dataclass(frozen=True)
class Item:
    """One utterance to pack: ``source`` is a ``.npy`` file of (n_mels, frames) float32, or a
    picklable callable that returns that array."""
    path: str
    speaker: str
    source: Union[str, Callable[[], np.ndarray]]


def _log(msg: str):
    print(msg, flush=True)


def _read_source(source, n_mels: int) -> tuple[np.ndarray | None, str]:
    try:
        arr = source() if callable(source) else np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        return None, f"unreadable features ({type(e).__name__}: {e})"
    if arr.ndim != 2 or arr.shape[0] != n_mels or not np.isfinite(arr).all():
        return None, f"bad features (shape {arr.shape}, or not finite)"
    return arr, ""


def _shard_name(index: int, items: list[Item], dtype: str, n_mels: int) -> str:
    h = hashlib.sha1(json.dumps([FORMAT, dtype, n_mels, [(i.path, i.speaker, _source_id(i.source))
                                                           for i in items]]).encode()).hexdigest()[:12]
    return f"shard-{index:05d}-{h}"


def _source_id(source) -> str:
    return os.path.basename(source) if isinstance(source, (str, os.PathLike)) else repr(source)


def _write_shard(args) -> dict:
    """Pack ``items`` into one shard file (temporary name, then rename), then its record."""
    root, name, items, dtype, n_mels = args
    root = Path(root)
    data, record = root / (name + DTYPES[dtype]), root / (name + ".json")
    done = _read_record(record)
    if done is not None and data.is_file() and data.stat().st_size == done["bytes"]:
        return done                                   # finished by an earlier, interrupted build
    frames, skipped, n = [], [], 0
    with atomic_path(data, suffix=".tmp") as tmp:
        with open(tmp, "wb") as f:
            for it in items:
                arr, problem = _read_source(it.source, n_mels)
                if arr is None:
                    frames.append(0)
                    skipped.append(f"{it.path}: {problem}")
                    continue
                block = np.ascontiguousarray(arr.T, dtype=np.dtype(dtype))
                f.write(block.tobytes())
                frames.append(int(arr.shape[1]))
                n += block.nbytes
            f.flush()
            os.fsync(f.fileno())
    rec = {"name": name, "file": data.name, "bytes": n, "paths": [i.path for i in items], "frames": frames,
           "skipped": skipped}
    with atomic_open(record) as f:
        json.dump(rec, f)
    return rec


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class FeatureStore:
    """A finished store, opened read-only. ``paths``, ``speakers`` (per utterance) and ``frames``
    are the index; :meth:`segment` and :meth:`feature` read from the memory-mapped shards."""

    def __init__(self, root, key: str):
        self.root, self.key = Path(root), key
        try:
            meta = json.loads((self.root / "store.json").read_text())
        except FileNotFoundError:
            raise StoreInvalid("not built yet") from None
        except (OSError, ValueError) as e:
            raise StoreInvalid(f"store.json unreadable ({e})") from None
        if meta.get("format") != FORMAT:
            raise StoreInvalid(f"format {meta.get('format')}, this version reads {FORMAT}")
        if meta.get("key") != key:
            raise StoreInvalid("built from other files or settings than asked for now (stale)")
        for s in meta["shards"]:
            p = self.root / s["file"]
            size = p.stat().st_size if p.is_file() else -1
            if size != s["bytes"]:
                raise StoreInvalid(f"{s['file']} is {'missing' if size < 0 else f'{size} bytes'}, "
                                   f"not {s['bytes']} (truncated or damaged)")
        self.meta = meta
        self.dtype = np.dtype(meta["dtype"])
        self.n_mels = int(meta["n_mels"])
        self.files = [s["file"] for s in meta["shards"]]
        ix = meta["index"]
        self.paths: list[str] = ix["path"]
        self.speakers: list[str] = ix["speaker"]
        self.shard = np.asarray(ix["shard"], dtype=np.int32)
        self.offset = np.asarray(ix["offset"], dtype=np.int64)       # in frames, within the shard
        self.frames = np.asarray(ix["frames"], dtype=np.int64)
        self.skipped: list[str] = meta.get("skipped", [])
        self._maps = None
        self._since_release = 0

    # -- reading -------------------------------------------------------------------------------
    def __len__(self):
        return len(self.paths)

    def _views(self):
        if self._maps is None:       # opened lazily: also after a fork or in a spawned worker
            maps, views = [], []
            for name in self.files:
                with open(self.root / name, "rb") as f:
                    if os.fstat(f.fileno()).st_size == 0:
                        maps.append(None)
                        views.append(np.zeros((0, self.n_mels), self.dtype))
                        continue
                    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                if hasattr(m, "madvise"):
                    m.madvise(mmap.MADV_RANDOM)    # segments are random reads: no read-ahead
                maps.append(m)
                views.append(np.frombuffer(m, dtype=self.dtype).reshape(-1, self.n_mels))
            self._maps, self._viewlist = maps, views
        return self._viewlist

    def segment(self, i: int, start: int, n: int) -> np.ndarray:
        """Frames ``start:start+n`` of utterance ``i`` (clipped at its end): (n_mels, <=n) float32,
        read-only (a view of the mapped file; copy it to keep it)."""
        n = max(0, min(n, int(self.frames[i]) - start))
        off = int(self.offset[i]) + start
        block = self._views()[self.shard[i]][off:off + n]
        self._since_release += block.nbytes
        if self._since_release >= RELEASE_BYTES:
            self.release()       # the pages stay valid: a later read maps them again
        # float32: a view of the mapping (the caller's copy, e.g. np.stack, is the only read)
        return block.T if self.dtype == np.float32 else block.T.astype(np.float32)

    def feature(self, i: int) -> np.ndarray:
        """The whole utterance ``i``: (n_mels, frames) float32."""
        return self.segment(i, 0, int(self.frames[i]))

    def release(self):
        """Unmap the pages this process has read (they stay in the page cache for every process):
        the resident memory of a reader does not grow with the corpus."""
        self._since_release = 0
        for m in self._maps or ():
            if m is not None and hasattr(mmap, "MADV_DONTNEED"):
                m.madvise(mmap.MADV_DONTNEED)

    def __getstate__(self):          # a worker process maps the files itself
        state = dict(self.__dict__)
        state["_maps"] = None
        state.pop("_viewlist", None)
        return state

    # -- opening and building -------------------------------------------------------------------
    @classmethod
    def open(cls, root, key: str) -> "FeatureStore":
        """The store at ``root`` if it is finished, complete and built for ``key``; else
        StoreInvalid with the reason."""
        return cls(root, key)

    @classmethod
    def build(cls, root, key: str, items: list[Item], n_mels: int, dtype: str = "float32",
              workers: int = 0, shard_bytes: int = SHARD_BYTES, progress: bool = True,
              extra: dict | None = None) -> "FeatureStore":
        """Pack ``items`` into a store at ``root`` for ``key`` (a digest the caller computes of
        what the items come from). Items that do not read are left out and listed in ``skipped``."""
        if dtype not in DTYPES:
            raise ValueError(f"store dtype: one of {sorted(DTYPES)}, not {dtype!r}")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        # shards of consecutive items, cut by estimated size (the frames are known only once read)
        groups, cur, est = [], [], 0
        per_item = max(1, int(np.median([_estimate(it, n_mels, dtype) for it in items[:64]]))) if items else 1
        for it in items:
            cur.append(it)
            est += _estimate(it, n_mels, dtype, per_item)
            if est >= shard_bytes:
                groups.append(cur)
                cur, est = [], 0
        if cur:
            groups.append(cur)
        jobs = [(str(root), _shard_name(k, g, dtype, n_mels), g, dtype, n_mels) for k, g in enumerate(groups)]
        t0 = time.time()
        workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        if workers == 1:
            records = [_write_shard(j) for j in jobs]
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:   # no fork: see vc.data
                records = list(pool.map(_write_shard, jobs))
        index = {"path": [], "speaker": [], "shard": [], "offset": [], "frames": []}
        skipped = []
        for k, (rec, group) in enumerate(zip(records, groups)):
            off = 0
            skipped += rec["skipped"]
            for it, fr in zip(group, rec["frames"]):
                if fr:
                    for col, v in (("path", it.path), ("speaker", it.speaker), ("shard", k),
                                   ("offset", off), ("frames", fr)):
                        index[col].append(v)
                    off += fr
        meta = {"format": FORMAT, "key": key, "n_mels": n_mels, "dtype": dtype,
                "shards": [{"file": r["file"], "bytes": r["bytes"]} for r in records],
                "frames": int(sum(index["frames"])), "skipped": skipped, **(extra or {}), "index": index}
        with atomic_open(root / "store.json") as f:
            json.dump(meta, f)
        keep = {r["file"] for r in records} | {r["name"] + ".json" for r in records} | {"store.json", ".lock"}
        for p in root.iterdir():         # shards of an earlier build of other data
            if p.name not in keep and p.name.startswith("shard-"):
                p.unlink()
        if progress:
            _log(f"feature store {root}: {len(index['path'])} utterances, {meta['frames']} frames, "
                 f"{len(records)} shard(s), {sum(r['bytes'] for r in records) / 2 ** 30:.2f} GiB "
                 f"({time.time() - t0:.1f} s, {workers} process(es))")
        return cls(root, key)

    @classmethod
    def open_or_build(cls, root, key: str, make_items: Callable[[], list[Item]], n_mels: int,
                      dtype: str = "float32", workers: int = 0, progress: bool = True,
                      extra: dict | None = None) -> "FeatureStore":
        """Open the store, or (re)build it with a message saying why. ``make_items`` is called
        only when building (it may compute the features first). One builder at a time."""
        try:
            return cls.open(root, key)
        except StoreInvalid as e:
            first = e
        with _locked(Path(root)):
            try:
                return cls.open(root, key)       # another process built it while we waited
            except StoreInvalid as e:
                reason = e if str(first) == "not built yet" else first
            if str(reason) != "not built yet":
                _log(f"feature store {root}: {reason}; rebuilding")
            for p in Path(root).glob(".shard-*.tmp"):   # of a builder killed mid-write (we hold the lock)
                p.unlink()
            return cls.build(root, key, make_items(), n_mels, dtype, workers, progress=progress, extra=extra)


def _estimate(it: Item, n_mels: int, dtype: str, default: int = 0) -> int:
    """Bytes ``it`` will take in a shard, from the .npy header (no data read)."""
    if isinstance(it.source, (str, os.PathLike)):
        try:
            return max(0, os.path.getsize(it.source) - 128) * np.dtype(dtype).itemsize // 4
        except OSError:
            return default
    frames = getattr(it.source, "frames", None)       # a callable may say how long it is
    return int(frames) * n_mels * np.dtype(dtype).itemsize if frames else (default or 1)


def digest(*parts) -> str:
    """A key for :meth:`FeatureStore.open`: sha1 of the JSON of ``parts``."""
    return hashlib.sha1(json.dumps([FORMAT, *parts], sort_keys=True, default=str).encode()).hexdigest()
