"""Rows per second of `vc batch` with 1 and 2 workers on generated pairs.

    python benchmarks/batch_throughput.py                       # both vocoders, 100 pairs of 2 s
    python benchmarks/batch_throughput.py --vocoder griffinlim --rows 100 --workers 1,2,4
    python benchmarks/batch_throughput.py --dev ../shared/data/manifest.tsv --rows 20 \
        --vocoder hifigan --precisions fp32,auto          # 20 dev pairs, HiFi-GAN before/after bf16

Each configuration runs the real command (`python -m vc batch ...`) in a fresh output folder, so
the wall time includes start-up (imports, model loading in every worker); "rows/s" is rows over
that wall time. "s/row" is the mean time one worker spent on one row (from batch_report.tsv),
and "x real time" is seconds of audio written per second of wall time.
The model is --model if given, else the installed default model, else a randomly initialised
model of the default ModelConfig (same size and speed as a trained one; the output is noise).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import speechlike  # noqa: E402  (test helper: harmonic, speech-like tones)


def pick_model(arg: str | None, workdir: Path) -> tuple[Path, str]:
    from vc.convert import DEFAULT_MODEL
    if arg:
        return Path(arg), f"--model {arg}"
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL, f"installed default model {DEFAULT_MODEL}"
    from vc.checkpoint import save_checkpoint
    from vc.features import MelConfig
    from vc.model import ModelConfig, VoiceConverter
    path = save_checkpoint(workdir / "random.pt", VoiceConverter(ModelConfig()), MelConfig(),
                           meta={"note": "random weights, benchmark only"})
    return path, "random weights, default ModelConfig (no default model installed)"


def make_pairs(workdir: Path, rows: int, seconds: float) -> Path:
    """rows pairs: 20 source clips x (rows / 20) target voices (each voice reused by 20 rows)."""
    n_src, n_voice = 20, max(1, -(-rows // 20))
    (workdir / "src").mkdir()
    (workdir / "voices").mkdir()
    for i in range(n_src):
        sf.write(str(workdir / "src" / f"s{i:02d}.wav"), speechlike(seconds, 16000, f0=100 + 5 * i, seed=i), 16000)
    for v in range(n_voice):
        sf.write(str(workdir / "voices" / f"v{v}.wav"), speechlike(seconds, 22050, f0=180 + 10 * v, seed=100 + v), 22050)
    table = workdir / "pairs.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "target"])
        for r in range(rows):
            w.writerow([f"src/s{r % n_src:02d}.wav", f"voices/v{r // n_src}.wav"])
    return table


def dev_pairs(manifest: Path, workdir: Path, rows: int, seed: int = 0) -> Path:
    """rows ordered pairs of different dev speakers of a vc manifest (seeded), as a table."""
    with open(manifest, newline="") as f:
        dev = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "dev"]
    rng = np.random.default_rng(seed)
    table = workdir / "dev_pairs.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "target"])
        for _ in range(rows):
            a = dev[rng.integers(len(dev))]
            b = rng.choice([r for r in dev if r["speaker"] != a["speaker"]])
            w.writerow([str(manifest.parent / a["path"]), str(manifest.parent / b["path"])])
    return table


def run(table: Path, out: Path, model: Path, vocoder: str, config: str, precision: str = "auto") -> dict:
    workers, _, threads = config.partition("x")
    cmd = [sys.executable, "-m", "vc", "batch", str(table), "-o", str(out), "--model", str(model),
           "--vocoder", vocoder, "--workers", workers, "--precision", precision] + (["--threads", threads] if threads else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"vc batch failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    with open(out / "batch_report.tsv", newline="") as f:
        report = list(csv.DictReader(f, delimiter="\t"))
    done = [r for r in report if r["status"] == "done"]
    audio = sum(sf.info(str(out / r["output"])).duration for r in done)
    threads = next((ln.split(" x ")[1].split()[0] for ln in proc.stdout.splitlines() if " x " in ln), "?")
    return dict(rows=len(done), wall=wall, rate=len(done) / wall, threads=threads,
                per_row=float(np.mean([float(r["seconds"]) for r in done])), rtf=audio / wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--vocoder", choices=("griffinlim", "hifigan", "both"), default="both")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each generated clip")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; 'WxT' also "
                    "sets the torch threads per worker (default: cores // workers), e.g. 1,2,1x1")
    ap.add_argument("--dev", metavar="MANIFEST", help="pairs of dev speakers of this vc manifest instead of "
                    "generated clips (e.g. ../shared/data/manifest.tsv)")
    ap.add_argument("--precisions", default="auto", help="comma-separated HiFi-GAN precisions (fp32, bf16, auto)")
    args = ap.parse_args()
    vocoders = ("griffinlim", "hifigan") if args.vocoder == "both" else (args.vocoder,)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model, which = pick_model(args.model, workdir)
        if args.dev:
            table, what = dev_pairs(Path(args.dev).resolve(), workdir, args.rows), f"{args.rows} pairs of dev speakers of {args.dev}"
        else:
            table, what = make_pairs(workdir, args.rows, args.seconds), f"{args.rows} pairs of {args.seconds:g} s clips"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"model: {which}\n{what}; {os.cpu_count()} cores; load average at start {load:.1f}\n")
        print(f"{'vocoder':<11} {'precision':>9} {'workers':>7} {'threads':>7} {'rows':>5} {'wall s':>8} {'rows/s':>7} "
              f"{'s/row':>6} {'x real time':>11} {'load':>5}")
        for vocoder in vocoders:
            for precision in (args.precisions.split(",") if vocoder == "hifigan" else ["auto"]):
                for config in args.workers.split(","):
                    r = run(table, workdir / f"out_{vocoder}_{precision}_{config}", model, vocoder, config, precision)
                    print(f"{vocoder:<11} {precision:>9} {config.partition('x')[0]:>7} {r['threads']:>7} {r['rows']:>5} "
                          f"{r['wall']:>8.1f} {r['rate']:>7.2f} {r['per_row']:>6.2f} {r['rtf']:>11.2f} "
                          f"{os.getloadavg()[0]:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
