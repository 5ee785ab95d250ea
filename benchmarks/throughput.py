"""Throughput: real-time factor (compute seconds / audio seconds; below 1 = faster than real time)
of each inference stage, for 1 s, 10 s and 60 s of speech. Not a test: it prints what it saw.

    python benchmarks/throughput.py [--model CKPT] [--threads N] [--lengths 1 10 60] [--device cpu]

Stages: features (log-mel), model (speaker encoder on the 4 s target + content encoder + decoder,
which recalls the target's speech frames where the model has frame attention),
match (vc.match's envelope matching of the model's output to the target's speech frames, at the
model's own weight, else 0.25), match-high (vc.match's high-band matching, at the model's own
weight, else 0.5),
each vocoder (HiFi-GAN as before issue 11: fp32, the whole input in one call; and as now: the
precision --precision resolves to, bf16 on a CPU with AVX512-BF16/AMX, in pieces of
vc.vocoder.CHUNK_FRAMES frames), and end to end (vc.Converter.convert on waveforms: features,
model, vocoder, loudness matching; the target is a 4 s clip). The timed calls of all cells of a
row are interleaved (a change in the machine's load hits every cell alike); each cell is the
fastest of --repeats calls after a warm-up. The load average is printed with each row. Input: the bundled example clips, repeated to the length wanted.
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
from vc.match import match_envelope, match_high, speech_frames
from vc.features import MelConfig
from vc.model import ModelConfig, VoiceConverter

EXAMPLES = Path(__file__).resolve().parents[1] / "vc" / "examples"


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
    ap.add_argument("--precision", default="auto", help="HiFi-GAN precision of the new path (default auto)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    path = Path(args.model) if args.model else DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None
    if path is not None:
        model, mel_cfg, state = load_model(path, args.device)
        meta = state.get("meta", {})
        which = f"model {path}"
    else:
        torch.manual_seed(0)
        model, mel_cfg, meta = VoiceConverter(ModelConfig()).eval(), MelConfig(), {}
        which = "a randomly initialised model of the default ModelConfig (no default model installed)"
    convs = {"hifigan fp32 (before)": Converter(model, mel_cfg, vocoder="hifigan", device=args.device,
                                                precision="fp32", chunk_frames=10 ** 9, meta=meta),
             "hifigan": Converter(model, mel_cfg, vocoder="hifigan", device=args.device, precision=args.precision,
                                  meta=meta),
             "griffinlim": Converter(model, mel_cfg, vocoder="griffinlim", device=args.device, meta=meta)}
    conv = convs["hifigan"]
    sr = conv.sample_rate
    target = speech(4.0, sr)
    target_mel = conv.mel(target)
    bank, weight, high = speech_frames(target_mel), conv.match or 0.25, conv.match_high or 0.5
    print(f"{which}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    print(f"device {args.device}, {torch.get_num_threads()} torch threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"HiFi-GAN precision now: {conv.precision}")
    print(f"RTF = compute seconds / audio seconds (fastest of {args.repeats} after a warm-up)\n")

    cols = ("features", "model", f"match {weight:g}", f"match-high {high:g}", "hifigan fp32 (before)", f"hifigan {conv.precision} (now)",
            "griffinlim", "end to end hifigan (before)", f"end to end hifigan {conv.precision} (now)", "end to end griffinlim")
    print(f"| input | {' | '.join(cols)} | load avg |")
    print("|---|" + "---|" * (len(cols) + 1))
    for seconds in args.lengths:
        wav = speech(seconds, sr)
        mel = conv.mel(wav)
        old, new, gl = convs["hifigan fp32 (before)"], convs["hifigan"], convs["griffinlim"]
        with torch.inference_mode():
            decoded = conv.convert_mel(mel, conv.model.embed_speaker(target_mel)[0])
            fns = dict(zip(cols, (
                lambda: conv.mel(wav),
                lambda: conv.decode(conv.model.encode(mel), conv.model.embed_speaker(target_mel)[0], bank),
                lambda: match_envelope(decoded, bank, weight),
                lambda: match_high(decoded, bank, high),
                lambda: old.vocode(mel), lambda: new.vocode(mel), lambda: gl.vocode(mel),
                lambda: old.convert(wav, target), lambda: new.convert(wav, target), lambda: gl.convert(wav, target))))
            rows = {c: [] for c in cols}
            for fn in fns.values():
                fn()                                   # warm-up
            for _ in range(args.repeats):
                for c, fn in fns.items():
                    t = time.perf_counter()
                    fn()
                    rows[c].append(time.perf_counter() - t)
        audio_s = mel.shape[-1] * mel_cfg.hop_length / sr
        print(f"| {seconds:g} s | " + " | ".join(f"{min(rows[c]) / audio_s:.4f}" for c in cols)
              + f" | {os.getloadavg()[0]:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
