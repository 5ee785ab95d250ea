"""Does bf16 HiFi-GAN sound as good as fp32? Vocoder resynthesis of dev clips, scored both ways.

    python benchmarks/bf16_quality.py [--data ../shared/data/manifest.tsv] [--clips 40] [--threads 2]

For ``--clips`` dev utterances that have a transcript (a seeded pick, round-robin over the dev
speakers): the clip's log-mel through HiFi-GAN in fp32 and under bf16 autocast (vc.Converter.vocode,
the path `vc convert` takes), then DNSMOS (overall, 1-5) and Whisper tiny's CER against the
transcript (vc.evaluate's scorers, the figures of the evaluation report's "vocoder resynthesis"
row), and the mean absolute log-mel difference between the two outputs. Paired differences
with 95 % bootstrap intervals. Needs the evaluation extra (speechmos, faster-whisper, jiwer).
The acceptance bar of issue 11: DNSMOS within 0.05 and CER within 1 point of fp32.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import soxr
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pick(manifest: Path, n: int, seed: int = 0, max_seconds: float = 12.0) -> list[dict]:
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")
                if r["split"] == "dev" and r["text"].strip() and float(r["seconds"]) <= max_seconds]
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list] = {}
    for r in rng.permutation(len(rows)):
        by_speaker.setdefault(rows[r]["speaker"], []).append(rows[r])
    chosen, queues = [], [v for _, v in sorted(by_speaker.items())]
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop())
    for r in chosen:
        r["abspath"] = str(manifest.parent / r["path"])
    return chosen


def bootstrap(d: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (reps, d.size))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "manifest.tsv"))
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import vc
    from vc.evaluate import asr, quality
    from vc.features import mel_spectrogram

    clips = pick(Path(args.data), args.clips)
    convs = {p: vc.load(vocoder="hifigan", precision=p) for p in ("fp32", "bf16")}
    conv = convs["fp32"]
    print(f"{len(clips)} dev clips ({len({c['speaker'] for c in clips})} speakers, "
          f"{sum(float(c['seconds']) for c in clips):.0f} s); load average at start {os.getloadavg()[0]:.1f}")
    scores = {p: {"dnsmos": [], "cer": []} for p in convs}
    mel_diff, seconds = [], {p: 0.0 for p in convs}
    for i, clip in enumerate(clips):
        wav = conv.load(clip["abspath"])
        mel = conv.mel(wav)
        outs = {}
        for p, c in convs.items():
            t = time.perf_counter()
            outs[p] = c.vocode(mel)
            seconds[p] += time.perf_counter() - t
            w16 = soxr.resample(outs[p], conv.sample_rate, 16000)
            scores[p]["dnsmos"].append(quality.dnsmos(w16)["ovrl"])
            scores[p]["cer"].append(asr.cer(clip["text"], asr.transcribe(w16)))
        mel_diff.append(float((mel_spectrogram(outs["bf16"]) - mel_spectrogram(outs["fp32"])).abs().mean()))
        print(f"  {i + 1}/{len(clips)} {Path(clip['path']).name}: DNSMOS {scores['fp32']['dnsmos'][-1]:.2f} / "
              f"{scores['bf16']['dnsmos'][-1]:.2f}, CER {scores['fp32']['cer'][-1]:.3f} / {scores['bf16']['cer'][-1]:.3f}",
              flush=True)
    audio = sum(len(conv.load(c["abspath"])) for c in clips) / conv.sample_rate
    print(f"\nvocoder resynthesis of {len(clips)} dev clips, fp32 vs bf16 (load average at end "
          f"{os.getloadavg()[0]:.1f})\n")
    print("| metric | fp32 | bf16 | bf16 - fp32 [95 % CI] |\n|---|---|---|---|")
    for key, scale in (("dnsmos", 1), ("cer", 100)):
        a, b = np.array(scores["fp32"][key]) * scale, np.array(scores["bf16"][key]) * scale
        lo, hi = bootstrap(b - a)
        name = "DNSMOS (overall)" if key == "dnsmos" else "CER %"
        print(f"| {name} | {a.mean():.3f} | {b.mean():.3f} | {(b - a).mean():+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    print(f"| log-mel mean abs diff | | | {np.mean(mel_diff):.4f} |")
    print(f"| vocoder RTF (busy machine) | {seconds['fp32'] / audio:.3f} | {seconds['bf16'] / audio:.3f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
