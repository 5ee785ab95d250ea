"""A long input (default 10 minutes of speech): time and peak memory of `vc convert`, and what
chunking the *model* would do to its output (why vc runs the model on the whole input).

    python benchmarks/long_input.py [--minutes 10] [--model CKPT] [--precision auto] [--threads 2]

1. Writes ``--minutes`` of speech (the bundled example clips, tiled) to a FLAC file and runs the
   real command, ``python -m vc convert LONG.flac TARGET -o OUT.wav``, in a child process:
   wall time, real-time factor (wall / audio; includes start-up and model loading) and the
   child's peak resident memory (ru_maxrss).
2. In this process, on ``--model-seconds`` of the same speech: the model's output log-mel when
   the model sees the whole input (what vc does) against the model run on pieces of 10 s or
   30 s (instance normalisation then uses each piece's own statistics), and against the whole
   input with its log-mel computed in pieces (vc.convert.long_mel: should be 0). Mean absolute
   difference in log-mel (for scale: HiFi-GAN's copy-synthesis error is about 0.27).
The load average (1 min) is printed next to each figure.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "vc" / "examples"


def load() -> str:
    return "%.1f" % os.getloadavg()[0]


def speech(seconds: float, sr: int = 22050) -> np.ndarray:
    from vc.audio import load_audio
    wav = np.concatenate([load_audio(p, sr) for p in sorted(EXAMPLES.glob("*.flac"))])
    return np.tile(wav, int(np.ceil(seconds * sr / wav.size)))[: int(seconds * sr)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", help="checkpoint (default: the installed default model)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-seconds", type=float, default=120.0)
    ap.add_argument("--skip-convert", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from vc.convert import DEFAULT_MODEL, long_mel
    from vc.checkpoint import load_model
    from vc.features import MelConfig, mel_spectrogram
    model_path = Path(args.model) if args.model else DEFAULT_MODEL
    print(f"model {model_path}; {args.threads} threads; load average at start {load()}")

    if not args.skip_convert:
        with tempfile.TemporaryDirectory() as tmp:
            long = Path(tmp) / "long.flac"
            sf.write(str(long), speech(args.minutes * 60, 22050), 22050)
            target = EXAMPLES / "so762-2022_f.flac"
            cmd = [sys.executable, "-m", "vc", "convert", str(long), str(target), "-o", str(Path(tmp) / "out.wav"),
                   "--model", str(model_path), "--precision", args.precision]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            before = load()
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            if proc.returncode:
                print(proc.stdout, proc.stderr)
                return 1
            out_s = sf.info(str(Path(tmp) / "out.wav")).duration
            print(f"\nvc convert of {args.minutes:g} min ({out_s:.0f} s written), precision {args.precision}: "
                  f"wall {wall:.1f} s (RTF {wall / out_s:.3f}, start-up and loading included), "
                  f"peak RSS {peak_mb:.0f} MB; load average {before} at start, {load()} at end")

    net, cfg, _ = load_model(model_path, "cpu")
    wav = speech(args.model_seconds)
    with torch.inference_mode():
        whole_mel = mel_spectrogram(torch.from_numpy(wav), cfg)
        piece_mel = long_mel(wav, cfg, chunk_frames=1000)
        spk = net.embed_speaker(mel_spectrogram(torch.from_numpy(speech(4.0)), cfg))

        def convert(mel):
            return net.decode(net.encode(mel).with_speaker(spk))[0]

        ref = convert(whole_mel)
        print(f"\nmodel output log-mel, {args.model_seconds:g} s of speech, mean |difference| from the whole "
              f"input's (load {load()}):")
        print(f"  log-mel computed in pieces of 1000 frames, model on the whole: {float((convert(piece_mel) - ref).abs().mean()):.5f}")
        for seconds in (10, 30):
            n = int(seconds * cfg.sample_rate / cfg.hop_length)
            parts = torch.cat([convert(whole_mel[:, s: s + n]) for s in range(0, whole_mel.shape[-1], n)], dim=-1)
            d = (parts - ref).abs()
            print(f"  model on pieces of {seconds} s (own statistics per piece): mean {float(d.mean()):.4f}, "
                  f"largest frame mean {float(d.mean(0).max()):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
