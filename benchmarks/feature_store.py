"""Training data at corpus scale: the feature store (vc.feature_store) against the loader that
held every feature in each process's memory. Prints figures; not a test.

    python benchmarks/feature_store.py --work /tmp/vc-bench                   # 50 h, 2,000 speakers
    python benchmarks/feature_store.py --work /tmp/vc-bench --hours 5 --speakers 200 --keep
    python benchmarks/feature_store.py --work /tmp/vc-bench --train-data ../shared/data/manifest.tsv \\
        --cache CACHE_DIR --old-code /tmp/old   # + steps/s of `vc train` (old: git archive REV vc | tar -x -C /tmp/old)

1. A synthetic corpus of random log-mels (no audio: ``--hours`` of 2-8 s utterances of
   ``--speakers`` speakers) is packed into a store (time, size). A fresh process opens it, draws
   ``--batches`` batches of 16 x 128 frames in-process and then with 2 loader workers, and
   reports its start-up time, batches/s, and peak RSS / anonymous RSS / PSS of itself and of
   each worker.
2. The same on a smaller corpus (``--old-hours``) written as the per-file .npy cache, read by
   the old way (every file read by the cache check, the usable check and the sampler, all held
   in memory) and by the store, each in a fresh process.
3. With ``--train-data``: `vc train` steps/s on that data (default.yaml, ``--steps`` steps, one
   thread), with the old code and with the store (0 and 1 loader workers). ``--cache`` is a
   per-file feature cache to copy first (read only).
Everything is written under ``--work`` and deleted at the end unless ``--keep``.

Measured on this project's 2-core VM while other training jobs ran (load average 10-16; this
script under ``nice -n 19``, so absolute times are slow and noisy):
  * 50 h, 2,000 speakers (36,015 utterances, 4.62 GiB float32 store, 10 shards): start-up
    (open + sampler) 0.07-0.33 s; peak RSS 494 MB for the reading process (164 MB anonymous),
    420-433 MB per loader worker (PSS 135-230 MB). The old loader holds every feature in each
    process: 783 MB peak (630 MB anonymous) measured at 5 h, i.e. about 5.1 GB per process at
    50 h. Batches (16 x 128 frames, perturbed) in one process: 31/s; with 2 workers 16/s here (two
    cores already busy: workers cannot help, and each batch crosses shared memory).
  * 5 h in the per-file cache: start-up 8.9 s the old way (every file read three times) against
    8.3 s for the first start with the store (cache check + packing) and 1.0 s after; 118 vs 108
    batches/s.
  * `vc train` on shared/data (4,811 train utterances, 5.5 h; default.yaml as of 2026-12-01, one
    thread, 15 steps, two alternated rounds): old code 0.73 / 0.73 steps/s, 0.75 CPU-s/step, peak
    RSS 1,437 MB; store, in-process 0.68 / 0.75 steps/s, 0.80 CPU-s/step, 1,014 MB; store, one
    worker 0.70 / 0.70 steps/s, 0.73-0.76 CPU-s/step, 961 MB + 446 MB (PSS 233) for the worker.
    Start-up with the store: 4.1-9.2 s the first time (packing 4,811 files), 0.3-1.0 s after.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAMES_PER_S = 22050 / 256
N_MELS = 80


class Synthetic:
    """A picklable source of one utterance's random features."""

    def __init__(self, seed: int, frames: int):
        self.seed, self.frames = seed, frames

    def __call__(self):
        rng = np.random.default_rng(self.seed)
        return (rng.random((N_MELS, self.frames), dtype=np.float32) * 10 - 11)

    def __repr__(self):
        return f"Synthetic({self.seed},{self.frames})"


def corpus(hours: float, speakers: int, seed: int = 0):
    """(path, speaker, frames) of utterances of 2-8 s until ``hours``, speakers in turn."""
    rng = np.random.default_rng(seed)
    out, total, i = [], 0, 0
    while total < hours * 3600 * FRAMES_PER_S:
        frames = int(rng.uniform(2, 8) * FRAMES_PER_S)
        out.append((f"/synthetic/spk{i % speakers:05d}/utt{i:07d}.wav", f"spk{i % speakers:05d}", frames))
        total, i = total + frames, i + 1
    return out


def memory(pid="self") -> dict:
    """MB: peak RSS, RSS now, anonymous and file-backed RSS, PSS."""
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    kb = lambda k: int(status[k].split()[0]) / 1024  # noqa: E731
    out = {"peak_rss": kb("VmHWM"), "rss": kb("VmRSS"), "rss_anon": kb("RssAnon"), "rss_file": kb("RssFile")}
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {k: round(v) for k, v in out.items()}


def children() -> list[int]:
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            pids += [int(p) for p in open(f"/proc/self/task/{task}/children").read().split()]
        except OSError:
            pass
    return pids


# -- measurements, each in its own process ----------------------------------------------------

def measure_store(root: str, key: str, batches: int) -> dict:
    import torch
    from vc.batches import SegmentSampler, StepBatches, step_loader
    from vc.feature_store import FeatureStore
    torch.set_num_threads(1)
    t0 = time.time()
    store = FeatureStore.open(root, key)
    sampler = SegmentSampler(store, 128, seed=0)
    start = time.time() - t0
    data = StepBatches(sampler, 16, 1, seed=0, warp=0.15, tilt_db=6.0)
    t0 = time.time()
    for _ in step_loader(data, 0, batches, workers=0):
        pass
    here = batches / (time.time() - t0)
    main = memory()
    t0 = time.time()
    it = step_loader(data, batches, 2 * batches, workers=2)
    next(it)
    workers = [memory(p) for p in children()]
    for k, _ in enumerate(it):
        if k % 50 == 49:        # reading /proc/PID/smaps_rollup is slow: not every batch
            workers = [memory(p) for p in children()] or workers
    two = (batches - 1) / (time.time() - t0)
    return {"utterances": len(store), "startup_s": round(start, 3), "batches_per_s_in_process": round(here, 1),
            "batches_per_s_2_workers": round(two, 1), "main": main, "workers": workers,
            "main_after_workers": memory()}


def batches_per_second(sampler, batches: int) -> float:
    """Draw ``batches`` training batches (with their perturbations) in this process."""
    from vc.batches import StepBatches, step_loader
    data = StepBatches(sampler, 16, 1, seed=0, warp=0.15, tilt_db=6.0)
    t0 = time.time()
    for _ in step_loader(data, 0, batches, workers=0):
        pass
    return round(batches / (time.time() - t0), 1)


def measure_old(utts_json: str, cache: str, batches: int) -> dict:
    import torch
    from vc.batches import SegmentSampler
    from vc.data import Utterance, build_cache, cache_path, load_cached
    from vc.features import MelConfig
    torch.set_num_threads(1)
    utts = [Utterance(**u) for u in json.loads(Path(utts_json).read_text())]
    t0 = time.time()        # what Run.__init__ did: check the cache, the usable check, then load all
    utts, _ = build_cache(utts, cache, MelConfig(), workers=1, progress=False)
    utts = [u for u in utts if load_cached(cache_path(cache, u.path, MelConfig())) is not None]
    sampler = SegmentSampler.from_cache(utts, cache, MelConfig(), 128, seed=0)
    start = time.time() - t0
    return {"utterances": len(utts), "startup_s": round(start, 2),
            "batches_per_s_in_process": batches_per_second(sampler, batches), "main": memory()}


def measure_new_small(utts_json: str, cache: str, batches: int) -> dict:
    import torch
    from vc.batches import SegmentSampler
    from vc.data import Utterance, training_store
    from vc.features import MelConfig
    torch.set_num_threads(1)
    utts = [Utterance(**u) for u in json.loads(Path(utts_json).read_text())]
    t0 = time.time()
    store = training_store(utts, cache, MelConfig(), workers=2, progress=False)
    sampler = SegmentSampler(store, 128, seed=0)
    start = time.time() - t0
    return {"utterances": len(store), "startup_s": round(start, 2),
            "batches_per_s_in_process": batches_per_second(sampler, batches), "main": memory()}


def child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def train_speed(label, code: Path, data, cache, work: Path, steps: int, workers: int | None) -> dict:
    import yaml
    cfg = yaml.safe_load((REPO / "vc" / "configs" / "default.yaml").read_text())
    cfg.update(steps=steps, log_every=5, ckpt_every=10 ** 6, ckpt_minutes=0, val_every=10 ** 6,
               sample_every=0, threads=1, cache_dir=str(cache))
    if workers is not None:
        cfg["num_workers"] = workers
    out = work / f"run-{label}"
    shutil.rmtree(out, ignore_errors=True)
    (work / f"{label}.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code)}
    t0 = time.time()
    p = subprocess.Popen([sys.executable, "-m", "vc", "train", "--config", str(work / f"{label}.yaml"), "--data",
                          str(data), "--out", str(out), "--no-progress"], env=env, cwd=str(code),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, marks, workers = {}, [], []
    metrics = out / "metrics.jsonl"
    while p.poll() is None:
        try:
            peak = max(peak, memory(p.pid), key=lambda m: m.get("peak_rss", 0))
            workers = [memory(c) for c in _children_of(p.pid)] or workers
            steps = sum(1 for _ in open(metrics)) * 5 if metrics.is_file() else 0
            marks.append((steps, time.time(), _cpu_seconds([p.pid, *_children_of(p.pid)])))
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    log = p.stdout.read()
    if p.returncode:
        raise RuntimeError(log[-3000:])
    rows = [json.loads(line) for line in open(out / "metrics.jsonl") if "steps_per_s" in line]
    first = min(r["step"] for r in rows)
    speed = [r["steps_per_s"] for r in rows if r["step"] > first]     # the first interval has warm-up
    # CPU seconds per step (the training process and its loader workers), between the first and
    # the last log line seen: steadier than steps/s when other jobs share the CPU
    marks = [m for m in marks if m[0] > 0]
    a = marks[0]
    b = next(m for m in marks if m[0] == marks[-1][0])
    cpu = (b[2] - a[2]) / max(1, b[0] - a[0])
    return {"steps_per_s": round(float(np.mean(speed)), 3), "cpu_s_per_step": round(cpu, 3),
            "wall_s": round(time.time() - t0, 1), "startup": _startup(log), "memory": peak, "workers": workers}


def _cpu_seconds(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def _children_of(pid) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(p) for p in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            pass
    return out


def _startup(log: str):
    for line in log.splitlines():
        if line.startswith("features:") and "(" in line:
            return line
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--hours", type=float, default=50, help="0: no synthetic corpus")
    p.add_argument("--speakers", type=int, default=2000)
    p.add_argument("--old-hours", type=float, default=5, help="0: no comparison on a small corpus")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--workers", type=int, default=2, help="processes packing the store")
    p.add_argument("--train-data")
    p.add_argument("--cache", type=Path, help="per-file feature cache of --train-data (copied, read only)")
    p.add_argument("--old-code", type=Path, help="a checkout of the code before the store (its vc/)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeat", type=int, default=1, help="rounds of the training variants")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    from vc.feature_store import FeatureStore, Item
    from vc.data import Utterance
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results = {"load_average": os.getloadavg()}
    try:
        # 1. the store at scale
        utts = corpus(args.hours, args.speakers) if args.hours > 0 else []
        if utts:
            t0 = time.time()
            store = FeatureStore.build(work / "big", "bench", [Item(u, s, Synthetic(i, f)) for i, (u, s, f) in enumerate(utts)],
                                       N_MELS, workers=args.workers)
            gib = sum((store.root / f).stat().st_size for f in store.files) / 2 ** 30
            results["big"] = {"hours": round(sum(f for *_, f in utts) / FRAMES_PER_S / 3600, 1), "speakers": args.speakers,
                              "utterances": len(utts), "store_GiB": round(gib, 2), "build_s": round(time.time() - t0, 1)}
            results["big"].update(child("store", store.root, "bench", args.batches))
            print(json.dumps({"big": results["big"]}), flush=True)
            del store
            if not args.keep:
                shutil.rmtree(work / "big")

        # 2. old loader vs store on a smaller corpus in the per-file cache
        small = corpus(args.old_hours, max(2, args.speakers // 10), seed=1) if args.old_hours > 0 else []
        from vc.data import cache_path
        from vc.features import MelConfig
        cache = work / "small-cache"
        rows = []
        for i, (path, spk, frames) in enumerate(small):
            audio = work / "small-audio" / spk / Path(path).name
            audio.parent.mkdir(parents=True, exist_ok=True)
            audio.touch()            # cache_path keys on the audio's path, size and time
            c = cache_path(cache, str(audio), MelConfig())
            c.parent.mkdir(parents=True, exist_ok=True)
            if not c.is_file():
                np.save(c, Synthetic(i, frames)())
            rows.append(vars(Utterance(path=str(audio), speaker=spk)))
        (work / "small.json").write_text(json.dumps(rows))
        if small:
            results["small_old"] = child("old", work / "small.json", cache, args.batches)
            results["small_store_first"] = child("new", work / "small.json", cache, args.batches)
            results["small_store_again"] = child("new", work / "small.json", cache, args.batches)
            print(json.dumps({k: results[k] for k in ("small_old", "small_store_first", "small_store_again")}), flush=True)

        # 3. training speed on real data
        if args.train_data:
            real = work / "real-cache"
            if args.cache and not real.exists():
                shutil.copytree(args.cache, real, ignore=shutil.ignore_patterns("stores", "*.tmp", ".*"))
            variants = ([("old", args.old_code, None)] if args.old_code else []) + \
                [("store_0_workers", REPO, 0), ("store_1_worker", REPO, 1)]
            for rep in range(args.repeat):           # alternated: other jobs' load changes over time
                for name, code, w in variants:
                    r = train_speed(name, code, Path(args.train_data).resolve(), real, work, args.steps, w)
                    results.setdefault(f"train_{name}", []).append(r)
                    print(json.dumps({f"train_{name}": r, "load_average": os.getloadavg()}), flush=True)
    finally:
        results["load_average_end"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "store":
            print(json.dumps(measure_store(rest[0], rest[1], int(rest[2]))))
        elif kind == "old":
            print(json.dumps(measure_old(rest[0], rest[1], int(rest[2]))))
        else:
            print(json.dumps(measure_new_small(rest[0], rest[1], int(rest[2]))))
    else:
        main()
