"""Where does the model's own reconstruction lose what a speaker verifier hears?

    python scripts/probe_ceiling.py --model vc/pretrained/default.pt --split val

For one utterance of each speaker of --split, the real log-mel M and the model's reconstruction R
(its own content and speaker vector) are mixed in controlled ways, each mix is vocoded with
HiFi-GAN, and ECAPA-TDNN (the verifier training never touches) compares it with *another* real
utterance of the same speaker, as `vc evaluate` does for the reconstruction row. If a mix that
gives R the real clip's X brings the similarity back up, X is what the model loses; if one that
gives the real clip R's X costs nothing, X is not.
Mixes: per-band means (the long-term spectrum, timbre), per-frame means (the energy contour),
bands of the mel (low, mid, high), and blurring the real mel in time or in frequency (how much
fine structure the verifier relies on). Prints one line per speaker and a Markdown table.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vc.audio import load_audio                    # noqa: E402
from vc.convert import load                        # noqa: E402
from vc.data import find_utterances                # noqa: E402
from vc.evaluate import ecapa, speaker             # noqa: E402
from vc.evaluate.report import bootstrap_ci       # noqa: E402


def blur(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Moving average of (n_mels, T) over ``width`` frames (dim 1) or bands (dim 0)."""
    y = x if dim == 1 else x.T
    y = F.avg_pool1d(y[None], width, 1, width // 2, count_include_pad=False)[0]
    return y if dim == 1 else y.T


def mixes(M: torch.Tensor, R: torch.Tensor) -> dict[str, torch.Tensor]:
    """(n_mels, T) real and reconstructed log-mels -> the mels to vocode, by name."""
    band, frame = (lambda x: x.mean(1, keepdim=True)), (lambda x: x.mean(0, keepdim=True))
    lo, hi = 20, 50                                # mel bands: ~0-0.7 kHz, 0.7-2.7 kHz, 2.7-8 kHz
    return {
        "real (vocoder resynthesis)": M,
        "reconstruction": R,
        "reconstruction with the real per-band means": R - band(R) + band(M),
        "reconstruction with the real per-band means and stds": (R - band(R)) / R.std(1, keepdim=True) * M.std(1, keepdim=True) + band(M),
        "real with the reconstruction's per-band means": M - band(M) + band(R),
        "reconstruction with the real energy contour": R - frame(R) + frame(M),
        "real with the reconstruction's energy contour": M - frame(M) + frame(R),
        f"real, bands 0-{lo - 1} from the reconstruction": torch.cat([R[:lo], M[lo:]]),
        f"real, bands {lo}-{hi - 1} from the reconstruction": torch.cat([M[:lo], R[lo:hi], M[hi:]]),
        f"real, bands {hi}-{M.shape[0] - 1} from the reconstruction": torch.cat([M[:hi], R[hi:]]),
        "real blurred in time (5 frames, 58 ms)": blur(M, 5, 1),
        "real blurred in frequency (3 bands)": blur(M, 3, 0),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the installed default model)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--split", default="val")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    conv = load(args.model)
    sr = conv.sample_rate
    by_speaker: dict[str, list[str]] = {}
    for u in find_utterances(args.data, args.split):
        by_speaker.setdefault(u.speaker, []).append(u.path)
    embed = lambda wav: ecapa.embed(soxr.resample(wav, sr, speaker.SAMPLE_RATE).astype(np.float32))   # noqa: E731
    sims: dict[str, list[float]] = {}
    for spk, paths in tqdm(sorted(by_speaker.items()), desc="speakers"):
        if len(paths) < 2:
            continue
        clip, other = load_audio(paths[0], sr), load_audio(paths[1], sr)
        reference = embed(other)
        with torch.inference_mode():
            M = conv.mel(clip)
            R = conv.convert_mel(M, conv.model.embed_speaker(M)[0], pitch=conv.pitch(clip))
            for name, mel in mixes(M, R).items():
                sims.setdefault(name, []).append(speaker.cosine(embed(conv.vocode(mel)), reference))
        tqdm.write(f"{spk}: reconstruction {sims['reconstruction'][-1]:.3f}, real {sims['real (vocoder resynthesis)'][-1]:.3f}")
    n = len(sims["reconstruction"])
    print(f"\nECAPA similarity to another real utterance of the same speaker ({n} speakers of '{args.split}', "
          f"model {args.model or 'default'}); paired differences with 95 % bootstrap intervals:\n\n"
          "| mel vocoded | mean | minus the reconstruction | minus the real |\n|---|---|---|---|")
    recon, real = np.array(sims["reconstruction"]), np.array(sims["real (vocoder resynthesis)"])

    def diff(d):
        lo, hi = bootstrap_ci(d) or (0.0, 0.0)
        return f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"
    for name, x in sims.items():
        x = np.array(x)
        print(f"| {name} | {x.mean():.3f} | {diff(x - recon)} | {diff(x - real)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
