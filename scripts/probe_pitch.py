"""How much does a model that reads the source's pitch (ModelConfig.pitch_channels) use it?

Each clip is rebuilt from its own content code and speaker vector, with four versions of its
pitch features: the real ones, none (every frame unvoiced, log-F0 0), the voicing only (a flat
melody), and the melody turned upside down. If the mean L1 to the real log-mel hardly differs,
the decoder takes its pitch from the content code, not from this input.

    python scripts/probe_pitch.py --model RUN/screen_model.pt --split val --clips 24   # ~1 min
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vc.audio import load_audio  # noqa: E402
from vc.checkpoint import load_model  # noqa: E402
from vc.data import find_utterances  # noqa: E402
from vc.features import mel_spectrogram  # noqa: E402
from vc.pitch import pitch_features  # noqa: E402

VARIANTS = {
    "real pitch": lambda p: p,
    "none (all unvoiced)": lambda p: torch.zeros_like(p),
    "voicing only (flat melody)": lambda p: torch.stack([torch.zeros_like(p[0]), p[1]]),
    "melody inverted": lambda p: torch.stack([-p[0], p[1]]),
}


def probe(model, mel_cfg, paths) -> dict[str, list[float]]:
    """{variant: reconstruction L1 of each clip}."""
    out = {k: [] for k in VARIANTS}
    for path in paths:
        wav = load_audio(path, mel_cfg.sample_rate)
        mel, pitch = mel_spectrogram(wav, mel_cfg), torch.from_numpy(pitch_features(wav, mel_cfg))
        with torch.inference_mode():
            speaker = model.embed_speaker(mel)
            for name, change in VARIANTS.items():
                rebuilt = model.decode(model.encode(mel, change(pitch)).with_speaker(speaker))[0]
                out[name].append((rebuilt - mel).abs().mean().item())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "manifest.tsv"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--clips", type=int, default=24, help="every n-th utterance of the split, this many")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, mel_cfg, _ = load_model(Path(args.model), "cpu")
    if not model.cfg.pitch_channels:
        sys.exit(f"{args.model}: this model reads no pitch (pitch_channels 0)")
    utts = find_utterances(args.data, args.split)
    paths = [u.path for u in utts[:: max(1, len(utts) // args.clips)][: args.clips]]
    res = probe(model.eval(), mel_cfg, paths)
    base = np.asarray(res["real pitch"])
    print(f"reconstruction L1 of {len(paths)} '{args.split}' clips, model {args.model}:\n")
    print("| pitch given | L1 | minus the real pitch's |\n|---|---|---|")
    for name, values in res.items():
        print(f"| {name} | {np.mean(values):.4f} | {np.mean(np.asarray(values) - base):+.4f} |")
    return res


if __name__ == "__main__":
    main()
