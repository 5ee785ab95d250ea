"""vc.feature_store and the loader: the store holds exactly the cached features, a truncated,
stale or half-built store is rebuilt (with a message) and never read, the sampler draws the same
batches from it as from features in memory, and loader workers draw what this process would."""
import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vc.batches import SegmentSampler, StepBatches, step_loader
from vc.data import InMemoryFeatures, build_cache, find_utterances, training_store
from vc.feature_store import FeatureStore, Item, StoreInvalid, digest
from vc.features import MelConfig
from conftest import write_wav


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """3 speakers x 3 utterances; features cached once for the module."""
    root = tmp_path_factory.mktemp("corpus")
    for s in range(3):
        for u in range(3):
            write_wav(root / f"spk{s}" / f"u{u}.wav", 0.8 + 0.3 * u, 16000, f0=100 + 50 * s, seed=7 * s + u)
    cache = tmp_path_factory.mktemp("cache")
    utts = find_utterances(root)
    build_cache(utts, cache, MelConfig(), workers=1, progress=False)
    return root, cache, utts


def _store(corpus, **kw):
    _, cache, utts = corpus
    return training_store(utts, cache, MelConfig(), workers=1, progress=False, **kw)


def test_store_holds_the_cached_features(corpus):
    _, cache, utts = corpus
    store = _store(corpus)
    mem = InMemoryFeatures(utts, cache)
    assert store.paths == mem.paths and store.speakers == mem.speakers
    assert np.array_equal(store.frames, mem.frames)
    for i in range(len(mem)):
        assert np.array_equal(store.feature(i), mem.feature(i)) and store.feature(i).dtype == np.float32
        assert np.array_equal(store.segment(i, 5, 20), mem.segment(i, 5, 20))
    half = _store(corpus, dtype="float16")
    assert half.root == store.root and half.dtype == np.float16     # same folder: rebuilt for float16
    assert np.allclose(half.feature(0), mem.feature(0), atol=1e-2)


def test_truncated_shard_is_rebuilt_with_a_message(corpus, capsys):
    store = _store(corpus)
    good = store.feature(4).copy()
    shard = store.root / store.files[0]
    shard.write_bytes(shard.read_bytes()[:1000])
    (store.root / f".{shard.name}.1234abcd.tmp").write_bytes(b"half")      # a builder killed mid-write
    with pytest.raises(StoreInvalid, match="truncated"):
        FeatureStore.open(store.root, store.key)
    again = _store(corpus)
    out = capsys.readouterr().out
    assert "truncated" in out and "rebuilding" in out and not list(store.root.glob(".*.tmp"))
    assert np.array_equal(again.feature(4), good)


def test_stale_store_is_rebuilt(corpus, capsys):
    root, cache, utts = corpus
    store = _store(corpus)
    capsys.readouterr()
    wav = root / "spk1" / "u2.wav"
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10 ** 9))   # the audio changed
    again = _store(corpus)
    out = capsys.readouterr().out
    assert again.root == store.root and again.key != store.key and "stale" in out and "rebuilding" in out
    with pytest.raises(StoreInvalid, match="stale"):
        FeatureStore.open(store.root, store.key)


def test_interrupted_build_keeps_finished_shards(tmp_path):
    arrays = [np.random.default_rng(i).standard_normal((8, 50 + i)).astype(np.float32) for i in range(12)]
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"{i}.npy", a)
    items = [Item(f"u{i}", f"s{i % 3}", str(tmp_path / f"{i}.npy")) for i in range(12)]
    store = FeatureStore.build(tmp_path / "st", "k1", items, 8, shard_bytes=4000, workers=2, progress=False)
    assert len(store.files) > 2
    first, last = (store.root / f for f in (store.files[0], store.files[-1]))
    stamp = first.stat().st_mtime_ns
    (store.root / "store.json").unlink()              # as if killed before the commit ...
    last.unlink()                                     # ... while writing the last shard
    with pytest.raises(StoreInvalid, match="not built"):
        FeatureStore.open(store.root, "k1")
    again = FeatureStore.build(tmp_path / "st", "k1", items, 8, shard_bytes=4000, workers=1, progress=False)
    assert first.stat().st_mtime_ns == stamp and last.is_file()    # finished shards were kept
    assert all(np.array_equal(again.feature(i), a) for i, a in enumerate(arrays))
    assert not [p for p in again.root.iterdir() if ".tmp" in p.name]


def test_unreadable_features_are_left_out(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((8, 40), np.float32))
    np.save(tmp_path / "b.npy", np.full((8, 40), np.nan, np.float32))
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    items = [Item(n, "s", str(tmp_path / f"{n}.npy")) for n in "abc"]
    store = FeatureStore.build(tmp_path / "st", "k", items, 8, workers=1, progress=False)
    assert store.paths == ["a"] and len(store.skipped) == 2


def test_sampler_draws_the_same_batches_from_store_and_memory(corpus):
    _, cache, utts = corpus
    store, mem = _store(corpus), InMemoryFeatures(utts, cache)
    pick = [0, 2, 3, 4, 5, 7, 8]
    a = SegmentSampler(store, 32, seed=3, indices=pick)
    b = SegmentSampler(mem, 32, seed=3, indices=pick)
    for _ in range(5):
        x, y = a.batch(4, per_speaker=2), b.batch(4, per_speaker=2)
        assert all(torch.equal(p, q) for p, q in zip(x[:3], y[:3])) and x.reference_paths == y.reference_paths


def test_loader_workers_draw_what_this_process_draws(corpus):
    sampler = SegmentSampler(_store(corpus), 32, seed=0)
    batches = StepBatches(sampler, 3, 1, seed=5, rank=1, warp=0.15, tilt_db=6.0)
    here = list(step_loader(batches, 4, 9, workers=0))
    there = list(step_loader(batches, 4, 9, workers=2))
    assert len(here) == len(there) == 5
    for x, y in zip(here, there):
        assert all(torch.equal(p, q) for p, q in zip((*x[:3], x.perturbed, x.rng_state), (*y[:3], y.perturbed, y.rng_state)))
    assert not torch.equal(here[0].segments, here[1].segments)


def test_reading_does_not_keep_the_store_resident(tmp_path):
    """A reader's mapped pages are dropped as it goes: its resident memory stays bounded."""
    from vc import feature_store
    n_mels, frames = 80, 40_000                                  # 12.8 MB per utterance
    items = [Item(f"u{i}", "s", _Ones(frames, n_mels)) for i in range(8)]
    store = FeatureStore.build(tmp_path / "st", "k", items, n_mels, workers=1, progress=False)
    old, feature_store.RELEASE_BYTES = feature_store.RELEASE_BYTES, 8 * 2 ** 20
    try:
        for i in range(len(store)):
            assert store.feature(i).shape == (n_mels, frames)
        mapped = sum(_resident_kb(store.root / f) for f in store.files)
    finally:
        feature_store.RELEASE_BYTES = old
    assert mapped < 30 * 1024                              # of 100 MB read (at most 8 MB + one utterance)


class _Ones:
    def __init__(self, frames, n_mels):
        self.frames, self.n_mels = frames, n_mels

    def __call__(self):
        return np.ones((self.n_mels, self.frames), np.float32)


def _resident_kb(path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def test_key_digest_is_stable():
    assert digest("a", [1, 2]) == digest("a", [1, 2]) != digest("a", [2, 1])


def test_layers_import_one_way():
    """corpora (vctk) -> data -> train -> cli: no module imports one above it, lazily or not,
    and the import graph of the package has no loop."""
    pkg = Path(__file__).resolve().parents[1] / "vc"
    graph = {}
    for f in pkg.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vc."):
                deps.add(node.module.split(".")[1])
        graph[f.stem] = deps & {p.stem for p in pkg.glob("*.py")}
    layer = {"vctk": 0, "data": 1, "feature_store": 1, "batches": 1, "train": 2, "train_data": 2, "train_checkpoints": 2,
             "train_reports": 2, "train_objective": 2, "vctk_cli": 3, "cli": 3}
    for mod, deps in graph.items():
        for d in deps:
            if mod in layer and d in layer:
                assert layer[d] <= layer[mod], f"vc.{mod} imports vc.{d}, a higher layer"

    def visit(node, path):
        assert node not in path, f"import loop: {' -> '.join(path + [node])}"
        for d in graph.get(node, ()):
            visit(d, path + [node])
    for mod in graph:
        visit(mod, [])
