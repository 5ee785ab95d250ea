"""Live conversion (vc.stream): the latency a speaker hears and the real-time factor. Not a test:
it prints what it saw.

    python benchmarks/live_latency.py [--model CKPT] [--seconds 15] [--chunks 0.25 0.5]
                                      [--vocoders hifigan griffinlim] [--threads 1]

Speech (the bundled example clips, one after the other, repeated to --seconds) is played into
``Live.push`` in real time: chunk k is handed over when its last sample has been "spoken",
(k + 1) x chunk seconds after the start, or at once if the previous step is still running (then
the stream is falling behind). Per configuration it prints

* compute per chunk (wall seconds of one push, p50 / p95 / max, and the CPU seconds of this
  thread, p50: what it costs on a core of its own) and the real-time factor (compute / audio;
  wall and CPU); "keeps up" when the lag (the time from a chunk's arrival to the end of its step)
  never grew over the run and ended under one chunk;
* the latency a listener hears: output played continuously without gaps must be delayed by the
  largest (end of the step that returned a sample - when that sample was spoken), over all
  samples; p50 of the same over steps too. It is chunk + the algorithmic part (Live.latency_s:
  0.25 s) + compute.

The load average is printed before and after: on a machine shared with other work the wall
figures are the load's as much as the code's.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import vc
from vc.audio import load_audio
from vc.stream import Live

EXAMPLES = Path(__file__).resolve().parents[1] / "vc" / "examples"


def speech(seconds: float, sr: int) -> np.ndarray:
    wav = np.concatenate([load_audio(p, sr) for p in sorted(EXAMPLES.glob("*.flac"))])
    return np.tile(wav, int(np.ceil(seconds * sr / wav.size)))[: int(seconds * sr)]


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def simulate(conv, speaker, wav, chunk_s: float) -> dict:
    sr = conv.sample_rate
    size = int(round(chunk_s * sr))
    live = Live(conv, speaker)
    live.push(wav[:size])                                  # warm-up (first calls allocate)
    live = Live(conv, speaker)
    walls, cpus, lags, heard = [], [], [], []
    emitted = 0
    t0 = time.perf_counter()
    for k, i in enumerate(range(0, wav.size, size)):
        piece = wav[i: i + size]
        arrival = t0 + (i + piece.size) / sr
        now = time.perf_counter()
        if now < arrival:
            time.sleep(arrival - now)
        start, c0 = time.perf_counter(), time.thread_time()
        out = live.push(piece)
        end = time.perf_counter()
        walls.append(end - start)
        cpus.append(time.thread_time() - c0)
        lags.append(end - arrival)
        if out.size:                                       # its first sample was spoken at emitted / sr
            heard.append(end - (t0 + emitted / sr))
            emitted += out.size
    audio = wav.size / sr
    half = len(lags) // 2
    return dict(chunk=chunk_s, algorithmic=live.latency_s, wall=np.array(walls), cpu=np.array(cpus),
                rtf_wall=sum(walls) / audio, rtf_cpu=sum(cpus) / audio, lag_end=lags[-1],
                keeps_up=lags[-1] < chunk_s and max(lags[half:]) <= max(lags[:half]) + chunk_s / 2,
                heard=np.array(heard))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint (default: the installed default model)")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--chunks", type=float, nargs="+", default=[0.25, 0.5])
    p.add_argument("--vocoders", nargs="+", default=["hifigan", "griffinlim"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s), device {args.device}; load average before: {load()}")
    for name in args.vocoders:
        conv = vc.load(args.model, vocoder=name, device=args.device)
        speaker = conv.speaker(EXAMPLES / "so762-0461_m.flac")
        wav = speech(args.seconds, conv.sample_rate)
        for chunk in args.chunks:
            r = simulate(conv, speaker, wav, chunk)
            w, h = r["wall"], r["heard"]
            print(f"{name} ({conv.precision if name == 'hifigan' else 'fp32'}), chunk {chunk:g} s, "
                  f"{args.seconds:g} s of speech: compute per chunk p50 {np.median(w):.3f} / p95 "
                  f"{np.percentile(w, 95):.3f} / max {w.max():.3f} s wall, CPU p50 {np.median(r['cpu']):.3f} s; "
                  f"real-time factor {r['rtf_wall']:.2f} wall, {r['rtf_cpu']:.2f} CPU; "
                  f"{'keeps up' if r['keeps_up'] else 'FALLS BEHIND'} (lag at the end {r['lag_end']:.2f} s); "
                  f"latency heard: {h.max():.2f} s (p50 over steps {np.median(h):.2f} s) = chunk {chunk:g} "
                  f"+ algorithmic {r['algorithmic']:.2f} + compute; load average {load()}", flush=True)


if __name__ == "__main__":
    main()
