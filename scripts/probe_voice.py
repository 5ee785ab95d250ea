"""Where does the target's voice get lost? Three probes of a model on seeded `val` pairs.

    python scripts/probe_voice.py [--model CKPT] [--data ../shared/data/manifest.tsv] [--pairs 40]

1. Pitch: the median F0 (librosa's pYIN) of source, target and conversion, and the least-squares
   fit log F0(conversion) = a * log F0(source) + b * log F0(target) + c. b near 1 and a near 0:
   the conversion speaks at the target's pitch, so pitch is not what keeps the source's voice.
2. Sharpness: a real clip of the target speaker (the pair's `ceiling` clip) is vocoded from its
   own log-mel, from that log-mel blurred along time or along the mel axis (a moving average of
   k frames or bins), and from the model's reconstruction of it; ECAPA-TDNN (the verifier that
   training never uses) compares each with the pair's target clip. This says how much of the
   verifier's similarity a given loss of detail costs.
3. Contrast: the mean absolute difference between neighbouring mel bins in speech frames, of the
   real log-mel, of the reconstruction, and of the real log-mel blurred over 3 bins.

Prints one table per probe. Needs the eval extras (ECAPA weights, HiFi-GAN).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vc.convert as convert  # noqa: E402
from vc.data import find_utterances  # noqa: E402
from vc.evaluate import ecapa, pairs, speaker  # noqa: E402

SR16 = 16000


def median_f0(wav: np.ndarray, sr: int) -> float:
    import librosa
    y = soxr.resample(wav, sr, SR16)
    f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=600, sr=SR16, frame_length=1024)
    f0 = f0[voiced & ~np.isnan(f0)]
    return float(np.median(f0)) if len(f0) > 5 else float("nan")


def blur(mel: torch.Tensor, k: int, axis: int) -> torch.Tensor:
    """A moving average of k frames (axis 1) or k mel bins (axis 0) of (n_mels, T)."""
    x = mel if axis == 1 else mel.T
    out = F.avg_pool1d(x[None], k, 1, k // 2, count_include_pad=False)[0][:, :x.shape[1]]
    return out if axis == 1 else out.T


def contrast(mel: torch.Tensor, speech: torch.Tensor) -> float:
    return mel.diff(dim=0)[:, speech].abs().mean().item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped default model)")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(2)
    conv = convert.load(args.model)
    sr = conv.sample_rate
    chosen = pairs.subset(pairs.corpus_pairs(find_utterances(args.data, args.split), args.seed), args.pairs, args.seed)

    def to16(w):
        return soxr.resample(w, sr, SR16).astype(np.float32)

    def reconstruct(mel):
        return conv.convert_mel(mel, conv.model.embed_speaker(mel)[0])

    variants = {"real log-mel": lambda m: m, "time blur 3": lambda m: blur(m, 3, 1),
                "time blur 5": lambda m: blur(m, 5, 1), "mel blur 3": lambda m: blur(m, 3, 0),
                "mel blur 5": lambda m: blur(m, 5, 0), "reconstruction": reconstruct}
    f0s, sims, contrasts = [], {k: [] for k in variants}, {"real": [], "reconstruction": [], "mel blur 3": []}
    for pair in tqdm(chosen, desc="pairs"):
        src, tgt, ceil = conv.load(pair.source), conv.load(pair.target), conv.load(pair.ceiling)
        out = conv.vocode(conv.convert_mel(conv.mel(src), conv.model.embed_speaker(conv.mel(tgt))[0]))
        f0s.append([median_f0(w, sr) for w in (src, tgt, out)])
        e_tgt, m = ecapa.embed(to16(tgt)), conv.mel(ceil)
        for name, fn in variants.items():
            sims[name].append(speaker.cosine(ecapa.embed(to16(conv.vocode(fn(m)))), e_tgt))
        speech = m.mean(0) > m.mean(0).max() - 4.0          # frames within ~35 dB of the loudest
        for name, x in (("real", m), ("reconstruction", reconstruct(m)), ("mel blur 3", blur(m, 3, 0))):
            contrasts[name].append(contrast(x, speech))

    f0 = np.log2(np.array(f0s))
    f0 = f0[~np.isnan(f0).any(1)]
    (a, b, _), *_ = np.linalg.lstsq(np.c_[f0[:, 0], f0[:, 1], np.ones(len(f0))], f0[:, 2], rcond=None)
    gap = lambda i, j: 12 * np.abs(f0[:, i] - f0[:, j]).mean()  # noqa: E731
    print(f"\n1. Pitch ({len(f0)} of {len(chosen)} pairs voiced): log F0(conversion) = {a:.2f} * source + "
          f"{b:.2f} * target + c; mean distance to the target {gap(2, 1):.1f} semitones, to the source "
          f"{gap(2, 0):.1f} (source to target {gap(0, 1):.1f})")
    print("\n2. ECAPA similarity to the target clip of another real clip of the target speaker, vocoded from:")
    print("| log-mel | ECAPA sim to target |\n|---|---|")
    for name, v in sims.items():
        print(f"| {name} | {np.mean(v):.3f} |")
    print("\n3. Mean |difference between neighbouring mel bins| in speech frames (natural-log units):")
    print("| log-mel | contrast |\n|---|---|")
    for name, v in contrasts.items():
        print(f"| {name} | {np.mean(v):.3f} |")


if __name__ == "__main__":
    main()
