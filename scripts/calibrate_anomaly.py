"""Calibrate and measure vc.anomaly (issue 12): the threshold from train/val speech, the ROC AUC and
false alarms on all dev speech against a generated non-speech set, per kind.

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

from vc.anomaly import ANOMALY_FILE, CLIP_SHARE, clipped_share, combine, file_sha1, native_samples, parts
from vc.audio import load_audio, prepare
from vc.checkpoint import load_model
from vc.convert import DEFAULT_MODEL, long_mel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SR = 22050
PERCENTILE = 99.0


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

    def measure(wav, native):
        """The model's parts of ``wav`` (prepared, at SR), and the clipping share of ``native``."""
        return {**parts(model, long_mel(torch.from_numpy(wav), mel_cfg)), "clip": clipped_share(native)}

    def measure_file(path):
        return measure(load_audio(path, SR), native_samples(path))

    calib_rows = random.Random(0).sample(rows({"train", "val"}), args.n)
    calib = [measure_file(DATA / r["path"]) for r in calib_rows]
    dev_paths = [DATA / r["path"] for r in rows({"dev"})]
    dev_wavs = [load_audio(path, SR) for path in dev_paths]
    dev = [measure(w, native_samples(path)) for w, path in zip(dev_wavs, dev_paths)]
    sets = non_speech(np.random.default_rng(0), dev_wavs, args.per_kind)
    nonspeech = {k: [measure(w, w) for w in ws] for k, ws in sets.items()}   # made at SR: native

    ref = {k: float(np.median([c[k] for c in calib])) for k in ("recon", "ratio")}
    for x in calib + dev + [x for ws in nonspeech.values() for x in ws]:
        x["score"] = combine(x, ref)
    report = {}
    names = {"recon": "reconstruction error alone", "ratio": "recon / trivial predictor alone",
             "score": "max of both, in units of their speech medians (shipped)"}
    for key in ("recon", "ratio", "score"):
        thr = float(np.percentile([c[key] for c in calib], PERCENTILE))
        d = [x[key] for x in dev]
        allns = [x[key] for ws in nonspeech.values() for x in ws]
        per_kind = {k: float(np.mean([x[key] > thr for x in ws])) for k, ws in nonspeech.items()}
        report[key] = dict(threshold=thr, dev_flagged=float(np.mean(np.array(d) > thr)),
                           nonspeech_flagged=float(np.mean(np.array(allns) > thr)),
                           auc=auc(d, allns), per_kind=per_kind,
                           auc_per_kind={k: auc(d, [x[key] for x in ws]) for k, ws in nonspeech.items()})
        print(f"\n== {key} ({names[key]})")
        print(f"threshold (p{PERCENTILE:g} of {len(calib)} train/val): {thr:.3f}   "
              f"dev speech flagged {report[key]['dev_flagged']:.1%} of {len(d)}   "
              f"non-speech flagged {report[key]['nonspeech_flagged']:.1%} of {len(allns)}   AUC {report[key]['auc']:.3f}")
        print(f"dev speech {key}: median {np.median(d):.3f}, max {np.max(d):.3f}")
        for k, ws in nonspeech.items():
            v = [x[key] for x in ws]
            print(f"  {k:22s} flagged {per_kind[k]:6.1%}  AUC {report[key]['auc_per_kind'][k]:.3f}  "
                  f"median {np.median(v):.3f}")
    # what a user sees: a warning from either check (the model's score, or clipping)
    thr = report["score"]["threshold"]
    either = lambda x: x["score"] > thr or x["clip"] > CLIP_SHARE     # noqa: E731
    allns = [x for ws in nonspeech.values() for x in ws]
    report["either"] = dict(
        threshold=thr, clip_share=CLIP_SHARE, dev_flagged=float(np.mean([either(x) for x in dev])),
        nonspeech_flagged=float(np.mean([either(x) for x in allns])),
        per_kind={k: float(np.mean([either(x) for x in ws])) for k, ws in nonspeech.items()},
        clip_dev_flagged=float(np.mean([x["clip"] > CLIP_SHARE for x in dev])),
        clip_calibration_p99=float(np.percentile([x["clip"] for x in calib], 99)))
    e = report["either"]
    print(f"\n== either check (score > {thr:.3f}, or over {CLIP_SHARE:.1%} of the samples at the peak)")
    print(f"dev speech flagged {e['dev_flagged']:.1%} (by clipping alone {e['clip_dev_flagged']:.1%}; "
          f"calibration clipping share p99 {e['clip_calibration_p99']:.1e})   "
          f"non-speech flagged {e['nonspeech_flagged']:.1%}")
    for k, v in e["per_kind"].items():
        print(f"  {k:22s} flagged {v:6.1%}")
    print("\ntrivial-predictor error (median): dev speech "
          f"{np.median([x['trivial'] for x in dev]):.3f}; " +
          ", ".join(f"{k} {np.median([x['trivial'] for x in ws]):.3f}" for k, ws in nonspeech.items()))

    if not args.dry_run:
        out = Path(args.out)
        data = json.loads(out.read_text()) if out.is_file() else {}
        r = report["score"]
        data[file_sha1(args.model)] = {
            "model": Path(args.model).name, "threshold": round(r["threshold"], 4),
            "recon": round(ref["recon"], 5), "ratio": round(ref["ratio"], 5),
            "score": "max(recon / recon, ratio / ratio) (vc.anomaly.combine)", "percentile": PERCENTILE,
            "calibration": f"{len(calib)} train/val utterances of manifest.tsv (seed 0)",
            "dev_speech_flagged": round(r["dev_flagged"], 4), "dev_utterances": len(dev),
            "nonspeech_flagged": round(r["nonspeech_flagged"], 4), "auc": round(r["auc"], 4),
            "nonspeech_flagged_per_kind": {k: round(v, 3) for k, v in r["per_kind"].items()},
            "with_clipping_check": {"clip_share": CLIP_SHARE,
                                    "dev_speech_flagged": round(e["dev_flagged"], 4),
                                    "nonspeech_flagged": round(e["nonspeech_flagged"], 4),
                                    "nonspeech_flagged_per_kind": {k: round(v, 3) for k, v in e["per_kind"].items()}},
            "parts_alone": {key: {k: round(v, 4) for k, v in report[key].items() if isinstance(v, float)}
                            for key in ("recon", "ratio")},
            "date": datetime.date.today().isoformat()}
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
