"""Hold some one-utterance training speakers out: a derived manifest with a `heldout` split.

    python scripts/holdout_speakers.py --out ~/vc-runs/holdout           # writes manifest.tsv, clips/
    vc train --data ~/vc-runs/holdout/manifest.tsv ...                   # never sees them (split train)
    vc evaluate --data ~/vc-runs/holdout/manifest.tsv --split heldout --max-pairs 40 ...

`val` has no LibriSpeech voice, and every LibriSpeech `train` speaker has a single ~14 s
utterance, so no split can say how well the speaker side generalises to such voices. This takes
a seeded choice of those speakers (half women, half men) out of `train` into a new split,
`heldout`, and cuts each one's utterance in two (`<speaker>_a.wav`, `<speaker>_b.wav`), so that
`vc evaluate` has a reference clip and a different clip of each (and words to convert). Every
other row is kept as it is (paths made absolute, so cached features stay valid). A model trained
on the derived manifest has never seen the held-out speakers; one trained on the original
manifest has (then the same split measures seen voices, which is also worth knowing).
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import soundfile as sf


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", default="librispeech")
    p.add_argument("--per-gender", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    with open(args.data, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        fields, rows = reader.fieldnames, list(reader)
    for r in rows:
        r["path"] = str((args.data.parent / r["path"]).resolve())
    one_each = [r for r in rows if r["corpus"] == args.corpus and r["split"] == "train"]
    rng = random.Random(args.seed)
    held = {r["speaker"] for g in ("f", "m") for r in rng.sample([r for r in one_each if r["gender"] == g], args.per_gender)}
    (args.out / "clips").mkdir(parents=True, exist_ok=True)
    out = []
    for r in rows:
        if r["speaker"] not in held:
            out.append(r)
            continue
        x, sr = sf.read(r["path"])
        for k, part in zip("ab", (x[: len(x) // 2], x[len(x) // 2:])):
            path = args.out / "clips" / f"{r['speaker']}_{k}.wav"
            sf.write(path, part, sr)
            out.append({**r, "path": str(path.resolve()), "split": "heldout", "seconds": f"{len(part) / sr:.2f}"})
    with open(args.out / "manifest.tsv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields, delimiter="\t")
        w.writeheader(), w.writerows(out)
    print(f"{len(held)} {args.corpus} speakers held out (split 'heldout', two halves each) -> {args.out / 'manifest.tsv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
