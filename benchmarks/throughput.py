"""Throughput: real-time factor (compute seconds / audio seconds; below 1 = faster than real time)
of each inference stage, for 1 s, 10 s and 60 s of speech. Not a test: it prints what it saw.

    python benchmarks/throughput.py [--model CKPT] [--threads N] [--lengths 1 10 60] [--device cpu]

Stages: features (log-mel), model (speaker encoder on the 4 s target + content encoder + decoder),
each vocoder,
and end to end (vc.Converter.convert on waveforms: features, model, vocoder, loudness matching;
the target is a 4 s clip). Input: the bundled example clips, repeated to the length wanted.
Uses the installed default model, else the given checkpoint, else a randomly initialised model
of the default ModelConfig (same size and cost as a trained one), and says which.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vc.audio import load_audio
from vc.convert import DEFAULT_MODEL, Converter
from vc.checkpoint import load_model
from vc.features import MelConfig
from vc.model import ModelConfig, VoiceConverter

EXAMPLES = Path(__file__).resolve().parents[1] / "vc" / "examples"


def timed(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after one warm-up call (the least disturbed by other jobs)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speech(seconds: float, sr: int) -> np.ndarray:
    clips = [load_audio(p, sr) for p in sorted(EXAMPLES.glob("*.flac"))]
    wav = np.concatenate(clips)
    return np.tile(wav, int(np.ceil(seconds * sr / wav.size)))[: int(seconds * sr)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint (default: the installed default model, else random weights)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--lengths", type=float, nargs="+", default=[1, 10, 60], help="input seconds")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per cell (default 3)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    path = Path(args.model) if args.model else DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None
    if path is not None:
        model, mel_cfg, _ = load_model(path, args.device)
        which = f"model {path}"
    else:
        torch.manual_seed(0)
        model, mel_cfg = VoiceConverter(ModelConfig()).eval(), MelConfig()
        which = "a randomly initialised model of the default ModelConfig (no default model installed)"
    convs = {v: Converter(model, mel_cfg, vocoder=v, device=args.device) for v in ("hifigan", "griffinlim")}
    conv = convs["hifigan"]
    sr = conv.sample_rate
    target = speech(4.0, sr)
    target_mel = conv.mel(target)
    print(f"{which}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    print(f"device {args.device}, {torch.get_num_threads()} torch threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"RTF = compute seconds / audio seconds (fastest of {args.repeats} after a warm-up)\n")

    cols = ("features", "model", "hifigan", "griffinlim", "end to end (hifigan)", "end to end (griffinlim)")
    print(f"| input | {' | '.join(cols)} |")
    print("|---|" + "---|" * len(cols))
    for seconds in args.lengths:
        wav = speech(seconds, sr)
        mel = conv.mel(wav)
        repeats = args.repeats
        with torch.inference_mode():
            rows = {
                "features": timed(lambda: conv.mel(wav), repeats),
                "model": timed(lambda: conv.convert_mel(mel, conv.model.embed_speaker(target_mel)[0]), repeats),
                "hifigan": timed(lambda: convs["hifigan"].vocode(mel), repeats),
                "griffinlim": timed(lambda: convs["griffinlim"].vocode(mel), repeats),
                "end to end (hifigan)": timed(lambda: convs["hifigan"].convert(wav, target), repeats),
                "end to end (griffinlim)": timed(lambda: convs["griffinlim"].convert(wav, target), repeats),
            }
        audio_s = mel.shape[-1] * mel_cfg.hop_length / sr
        print(f"| {seconds:g} s | " + " | ".join(f"{rows[c] / audio_s:.4f}" for c in cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
