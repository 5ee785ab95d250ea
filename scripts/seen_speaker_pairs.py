"""Pairs of *training* speakers that have one long utterance each, for a seen-vs-unseen check.

    python scripts/seen_speaker_pairs.py --out ~/vc-runs/libri_seen      # writes clips/ and pairs.tsv
    vc evaluate --pairs ~/vc-runs/libri_seen/pairs.tsv --systems converted,source \
        --out ~/vc-runs/libri_seen/v7 --model vc/pretrained/default.pt

Every LibriSpeech `train` speaker has a single ~14 s utterance. This cuts the utterances of a
seeded choice of speakers (half women, half men) in two: the first half is the speaker's
reference clip (what the speaker encoder hears), the second half the words it says as a source.
Scored like `dev`'s LibriSpeech pairs, the figures say how well the model places voices it was
trained on; the gap to `dev` (unseen test-other speakers) is how far the speaker side generalises.
Not a validation set: the model has seen these speakers (and both halves of their audio).
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import soundfile as sf


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", default="librispeech")
    p.add_argument("--per-gender", type=int, default=5)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    manifest = Path(args.data)
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")
                if r["corpus"] == args.corpus and r["split"] == "train"]
    rng = random.Random(args.seed)
    picked = [r for g in ("f", "m") for r in rng.sample([r for r in rows if r["gender"] == g], args.per_gender)]
    clips = {}
    (args.out / "clips").mkdir(parents=True, exist_ok=True)
    for r in picked:
        x, sr = sf.read(manifest.parent / r["path"])
        half = len(x) // 2
        ref, said = (args.out / "clips" / f"{r['speaker']}_{k}.wav" for k in "ab")
        sf.write(ref, x[:half], sr), sf.write(said, x[half:], sr)
        clips[r["speaker"]] = (ref, said)
    pairs = [(s, t) for s in clips for t in clips if s != t]
    rng.shuffle(pairs)
    with open(args.out / "pairs.tsv", "w") as f:
        f.write("source\ttarget\tsource_speaker\ttarget_speaker\n")
        for s, t in pairs[: args.pairs]:
            f.write(f"{clips[s][1]}\t{clips[t][0]}\t{s}\t{t}\n")
    print(f"{min(args.pairs, len(pairs))} pairs of {len(clips)} seen speakers -> {args.out / 'pairs.tsv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
