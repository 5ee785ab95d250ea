"""Calibrate and measure vc.anomaly (issue 12): thresholds and speaker statistics from train/val
speech; the ROC AUC and the share flagged of all `val` speech (where the score was chosen) and all
`dev` speech (where it is reported), each against a non-speech set generated from it, per kind.
Every part alone and each combination of parts is measured side by side.

    OMP_NUM_THREADS=2 python scripts/calibrate_anomaly.py [--model vc/pretrained/default.pt] [--n 400]

Writes vc/pretrained/anomaly.json (keyed by the model file's sha1) unless --dry-run."""
from __future__ import annotations

import argparse
import datetime
import json
import random
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vc.anomaly import ANOMALY_FILE, CLIP_SHARE, clipped_share, combine, file_sha1, native_samples, parts, speaker_distance
from vc.audio import load_audio, prepare
from vc.checkpoint import load_model
from vc.convert import DEFAULT_MODEL, long_mel
from vc.pitch import pitch_features

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SR = 22050
CALIBRATION_FLAGGED = 0.01        # each score's thresholds flag this share of calibration speech
SHIPPED = ("ratio", "speaker")
COMBINATIONS = [("recon",), ("ratio",), ("speaker",), ("recon", "ratio"), SHIPPED, ("recon", "ratio", "speaker")]


def rows(split_names):
    lines = (DATA / "manifest.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    out = []
    for line in lines[1:]:
        r = dict(zip(head, line.split("\t")))
        if r["split"] in split_names:
            out.append(r)
    return out


def coloured(rng, n, exponent):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec)); f[0] = 1
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def non_speech(rng, dev_speech, per_kind=10, seconds=3.0):
    """{kind: [waveforms at SR]}: coloured noise, tones, chords, chirps, clicks, silence with hum,
    dev speech in white noise at 0 dB SNR, and heavily clipped dev speech."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    kinds = {k: [] for k in ("white noise", "pink noise", "brown noise", "tone", "chord", "chirp",
                             "clicks", "silence with hum", "speech in noise 0 dB", "clipped speech")}
    for i in range(per_kind):
        kinds["white noise"].append(rng.standard_normal(n))
        kinds["pink noise"].append(coloured(rng, n, 1.0))
        kinds["brown noise"].append(coloured(rng, n, 2.0))
        kinds["tone"].append(np.sin(2 * np.pi * rng.uniform(100, 2000) * t))
        f0 = rng.uniform(110, 440)
        kinds["chord"].append(sum(np.sin(2 * np.pi * f0 * r * t) for r in (1, 1.26, 1.5, 2.0)))
        f1, f2 = rng.uniform(80, 500), rng.uniform(2000, 8000)
        kinds["chirp"].append(np.sin(2 * np.pi * (f1 * t + (f2 - f1) * t ** 2 / (2 * seconds))))
        clicks = np.zeros(n)
        clicks[rng.integers(0, n, int(rng.uniform(5, 40) * seconds))] = rng.choice([-1.0, 1.0])
        kinds["clicks"].append(clicks)
        hum_f = rng.choice([50.0, 60.0])
        hum = sum(np.sin(2 * np.pi * hum_f * k * t) / k for k in (1, 2, 3))
        kinds["silence with hum"].append(0.01 * hum + 1e-4 * rng.standard_normal(n))
        s = dev_speech[i % len(dev_speech)]
        noise = rng.standard_normal(len(s)) * np.sqrt(np.mean(s ** 2))
        kinds["speech in noise 0 dB"].append(s + noise)
        x = s / (np.abs(s).max() + 1e-9)
        kinds["clipped speech"].append(np.clip(20 * x, -1, 1))
    # through the same checks, trimming and loudness normalisation as a file given to vc convert
    return {k: [prepare(w.astype(np.float32) * 0.3, SR, k, sample_rate=SR) for w in ws]
            for k, ws in kinds.items()}


def auc(neg, pos):
    """P(score of a positive > score of a negative), ties count half."""
    neg, pos = np.asarray(neg), np.asarray(pos)
    gt = (pos[:, None] > neg[None]).mean()
    eq = (pos[:, None] == neg[None]).mean()
    return float(gt + 0.5 * eq)


def thresholds(calib, keys) -> dict:
    """{part: threshold}: the same percentile q of each part on calibration speech, the lowest q
    (from 99, in steps of 0.05) at which at most CALIBRATION_FLAGGED of it scores above 1."""
    for q in np.arange(99.0, 100.0, 0.05):
        t = {k: float(np.percentile([c[k] for c in calib], q)) for k in keys}
        if np.mean([combine(c, t) > 1 for c in calib]) <= CALIBRATION_FLAGGED:
            return t
    return {k: float(max(c[k] for c in calib)) for k in keys}


def measure_split(speech, nonspeech, t) -> dict:
    """Share of ``speech`` and of each kind of ``nonspeech`` flagged by thresholds ``t``, the AUC,
    and the same with the clipping check added."""
    allns = [x for ws in nonspeech.values() for x in ws]
    flagged = lambda x: combine(x, t) > 1                                   # noqa: E731
    either = lambda x: flagged(x) or x["clip"] > CLIP_SHARE                 # noqa: E731
    share = lambda xs, f: float(np.mean([f(x) for x in xs]))                 # noqa: E731
    return dict(speech_flagged=share(speech, flagged), nonspeech_flagged=share(allns, flagged),
                auc=auc([combine(x, t) for x in speech], [combine(x, t) for x in allns]),
                per_kind={k: share(ws, flagged) for k, ws in nonspeech.items()},
                with_clipping_check=dict(speech_flagged=share(speech, either), nonspeech_flagged=share(allns, either),
                                         per_kind={k: share(ws, either) for k, ws in nonspeech.items()}),
                flagged_speakers=sorted({x["speaker_name"] for x in speech if either(x)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--n", type=int, default=400, help="train/val utterances for calibration")
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--out", default=str(ANOMALY_FILE))
    args = ap.parse_args()
    torch.manual_seed(0)
    model, mel_cfg, _ = load_model(Path(args.model), "cpu")
    model.eval()

    def measure(wav, native, speaker=""):
        """The model's parts of ``wav`` (prepared, at SR), and the clipping share of ``native``."""
        pitch = torch.from_numpy(pitch_features(wav, mel_cfg)) if model.cfg.pitch_channels else None
        return {**parts(model, long_mel(torch.from_numpy(wav), mel_cfg), pitch=pitch), "clip": clipped_share(native),
                "speaker_name": speaker}

    calib_rows = random.Random(0).sample(rows({"train", "val"}), args.n)
    calib = [measure(load_audio(DATA / r["path"], SR), native_samples(DATA / r["path"])) for r in tqdm(calib_rows, desc="calibration")]
    vectors = torch.stack([c["speaker_vector"] for c in calib])
    stats = {"mean": vectors.mean(0).tolist(), "std": (vectors.std(0) + 1e-6).tolist()}
    splits = {}
    for split in ("val", "dev"):
        rs = rows({split})
        wavs = [load_audio(DATA / r["path"], SR) for r in tqdm(rs, desc=f"{split} speech")]
        speech = [measure(w, native_samples(DATA / r["path"]), r["speaker"]) for w, r in zip(wavs, rs)]
        sets = non_speech(np.random.default_rng(0), wavs, args.per_kind)
        splits[split] = (speech, {k: [measure(w, w) for w in ws] for k, ws in sets.items()})   # made at SR: native
    everything = calib + [x for sp, ns in splits.values() for x in sp + [y for ws in ns.values() for y in ws]]
    for x in everything:
        x["speaker"] = speaker_distance(x["speaker_vector"], stats)

    report = {}
    for keys in COMBINATIONS:
        name = " + ".join(keys) + (" (shipped)" if keys == SHIPPED else "")
        t = thresholds(calib, keys)
        report[name] = {"thresholds": t, **{split: measure_split(*splits[split], t) for split in splits}}
        print(f"\n== {name}: thresholds " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()))
        for split in splits:
            r, c = report[name][split], report[name][split]["with_clipping_check"]
            print(f"  {split}: speech flagged {r['speech_flagged']:.1%}, non-speech {r['nonspeech_flagged']:.1%}, "
                  f"AUC {r['auc']:.3f}; with the clipping check: speech {c['speech_flagged']:.1%} "
                  f"(speakers {', '.join(r['flagged_speakers']) or 'none'}), non-speech {c['nonspeech_flagged']:.1%}")
            print("     " + "  ".join(f"{k} {v:.0%}" for k, v in c["per_kind"].items()))

    if not args.dry_run:
        out = Path(args.out)
        data = json.loads(out.read_text()) if out.is_file() else {}
        shipped = report[" + ".join(SHIPPED) + " (shipped)"]
        data[file_sha1(args.model)] = {
            "model": Path(args.model).name,
            "thresholds": {k: round(v, 5) for k, v in shipped["thresholds"].items()},
            "speaker_stats": {k: [round(x, 5) for x in v] for k, v in stats.items()},
            "score": "max(part / its threshold) over " + ", ".join(SHIPPED) + " (vc.anomaly.combine); flagged above 1",
            "calibration": f"{len(calib)} train/val utterances of manifest.tsv (seed 0), "
                           f"{CALIBRATION_FLAGGED:.0%} of them flagged",
            "clip_share": CLIP_SHARE,
            "measured": {name: {split: {k: (round(v, 4) if isinstance(v, float) else v)
                                        for k, v in r[split].items() if k != "per_kind"}
                                for split in splits} for name, r in report.items()},
            "date": datetime.date.today().isoformat()}
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
