"""``vc vctk prepare|split|features|pairs``: the data stages of recipes/vctk/run.sh (the ``vc``
command registers them; vc.vctk itself knows nothing of its command line).

    vc vctk prepare CORPUS_ROOT -o WORK/manifest.tsv [--mic mic1]   # all recordings, split 'unassigned'
    vc vctk split WORK/manifest.tsv [--heldout FILE]                 # train / val / dev, in place
    vc vctk features WORK/manifest.tsv --out WORK/exp [--config C]   # the feature cache vc train reads
    vc vctk pairs WORK/manifest.tsv -o WORK/pairs.tsv                # parallel-sentence pairs of dev speakers

Every step is safe to re-run; files are written whole or not at all.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

from . import vctk
from .vctk import log


def cmd_prepare(args) -> int:
    t0 = time.time()
    rows = vctk.scan(args.corpus, mic=args.mic, workers=args.workers)
    if not rows:
        raise ValueError(f"{args.corpus}: no readable recordings found")
    vctk.write_rows(rows, args.output)
    log(f"wrote {args.output} ({len(rows)} rows, split '{vctk.UNASSIGNED}' until the split stage; "
        f"{time.time() - t0:.1f} s)")
    return 0


def cmd_split(args) -> int:
    rows = vctk.read_rows(args.manifest)
    if not rows:
        raise ValueError(f"{args.manifest}: empty manifest")
    if args.heldout:
        listed = vctk.read_heldout(args.heldout)
        source = str(args.heldout)
    else:
        listed, source = vctk.default_heldout(args.seed), "the built-in list (vc.vctk.default_heldout)"
    if not listed:
        raise ValueError(f"{args.heldout}: lists no speakers")
    heldout = vctk.heldout_for(rows, listed, args.seed)
    rows = vctk.assign_splits(rows, heldout, args.val_fraction, args.seed)
    out = vctk.write_rows(rows, args.output or args.manifest)
    (out.parent / "heldout_speakers.txt").write_text(
        f"# held-out (dev) speakers of {out.name}, from {source}\n" + "".join(f"{s}\n" for s in heldout))
    n_utt = Counter(r.split for r in rows)
    n_spk = {s: len({r.speaker for r in rows if r.split == s}) for s in n_utt}
    gender_of = {r.speaker: r.gender for r in rows}
    dev_gender = Counter(gender_of[f"{vctk.CORPUS}-{s}"] for s in heldout)
    for split in ("train", "val", "dev"):
        log(f"{split:5s}: {n_utt.get(split, 0):6d} recordings of {n_spk.get(split, 0):3d} speakers")
    log(f"held out: {', '.join(heldout)} ({dev_gender.get('f', 0)} F, {dev_gender.get('m', 0)} M); wrote {out}")
    return 0


def train_cache_dir(config, out) -> Path:
    """Where ``vc train --config CONFIG --out OUT`` keeps its feature cache."""
    from .train_config import DEFAULT_CONFIG, TrainConfig
    cfg = TrainConfig.from_yaml(config or DEFAULT_CONFIG)
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(out) / "cache"


def cmd_features(args) -> int:
    from .data import build_cache, read_manifest
    from .features import MelConfig
    if not args.cache and not args.out:
        raise ValueError("give --out RUN_DIR (the cache vc train will read) or --cache DIR")
    cache = Path(args.cache) if args.cache else train_cache_dir(args.config, args.out)
    utts = read_manifest(args.manifest)
    splits = set(args.splits.split(","))
    utts = [u for u in utts if u.split in splits]
    if not utts:
        raise ValueError(f"{args.manifest}: no recordings in split(s) {args.splits} (run the split stage first)")
    workers = args.workers or os.cpu_count() or 1
    t0 = time.time()
    ok, problems = build_cache(utts, cache, MelConfig(), workers=workers, progress=not args.no_progress)
    for p in problems:
        log(f"skipped {p}")
    if not ok:
        raise ValueError(f"{args.manifest}: no recording could be read")
    hours = sum(float(r.seconds or 0) for r in vctk.read_rows(args.manifest) if r.split in splits) / 3600
    log(f"features of {len(ok)}/{len(utts)} recordings ({hours:.2f} h of audio) cached in {cache} "
        f"({time.time() - t0:.1f} s with {workers} workers)")
    return 0


def cmd_pairs(args) -> int:
    rows = vctk.read_rows(args.manifest)
    pairs = vctk.parallel_pairs(rows, split=args.split, per_pair=args.per_pair, seed=args.seed)
    if not pairs:
        raise ValueError(f"{args.manifest}: no two '{args.split}' speakers share a parallel sentence "
                         f"(utterances {vctk.PARALLEL.start:03d}-{vctk.PARALLEL.stop - 1:03d} with transcripts)")
    vctk.write_pairs(pairs, args.output)
    n_spk = len({Path(p["source"]).parent.name for p in pairs})
    log(f"wrote {args.output}: {len(pairs)} pairs among {n_spk} '{args.split}' speakers")
    return 0


def register(sub):
    p = sub.add_parser("vctk", help="VCTK data steps: prepare, split, features, pairs (recipes/vctk)",
                       description="The data stages of recipes/vctk/run.sh (see recipes/vctk/README.md):\n\n"
                       + __doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = p.add_subparsers(dest="step", metavar="STEP")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    q = steps.add_parser("prepare", help="write a manifest of the corpus (either layout)",
                         description="Find every recording, its transcript, speaker, gender, age and length.")
    q.add_argument("corpus", help="VCTK root: the folder with speaker-info.txt (0.80 or 0.92)")
    q.add_argument("-o", "--output", required=True, help="manifest .tsv to write")
    q.add_argument("--mic", choices=vctk.MICS, default="mic1", help="0.92 only: which microphone (default mic1)")
    q.add_argument("--workers", type=int, default=16, help="threads reading file headers")
    q.set_defaults(func=cmd_prepare)

    q = steps.add_parser("split", help="assign train / val / dev (unseen speakers)",
                         description="Hold out speakers (dev) and 10%% of each other speaker's recordings (val).")
    q.add_argument("manifest")
    q.add_argument("--heldout", help="file of held-out speaker ids (default: the built-in list)")
    q.add_argument("--val-fraction", type=float, default=vctk.VAL_FRACTION)
    q.add_argument("--seed", type=int, default=vctk.HELDOUT_SEED)
    q.add_argument("-o", "--output", help="write here instead of rewriting MANIFEST")
    q.set_defaults(func=cmd_split)

    q = steps.add_parser("features", help="compute the log-mel cache (parallel, resumable)",
                         description="Cache features where `vc train --config CONFIG --out OUT` reads them.")
    q.add_argument("manifest")
    q.add_argument("--out", help="the training run folder (cache: OUT/cache unless the config sets cache_dir)")
    q.add_argument("--config", help="the training config (for its cache_dir)")
    q.add_argument("--cache", help="cache folder (instead of --out/--config)")
    q.add_argument("--splits", default="train,val,dev", help="comma-separated (default train,val,dev)")
    q.add_argument("--workers", type=int, default=0, help="processes (default: every CPU core)")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_features)

    q = steps.add_parser("pairs", help="evaluation pairs on parallel sentences (for vc evaluate)",
                         description="PAIRS.tsv with columns source, target, reference, text.")
    q.add_argument("manifest")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--split", default="dev")
    q.add_argument("--per-pair", type=int, default=1, help="sentences per ordered speaker pair (default 1)")
    q.add_argument("--seed", type=int, default=vctk.HELDOUT_SEED)
    q.set_defaults(func=cmd_pairs)
