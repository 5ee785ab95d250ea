"""Where does the model's own reconstruction lose what a speaker verifier hears?

    python scripts/probe_ceiling.py --model vc/pretrained/default.pt --split val

For ``--clips`` utterances of each speaker of --split (default one), the real log-mel M and the
model's reconstruction R (its own content and speaker vector) are mixed in controlled ways, each
mix is vocoded with HiFi-GAN, and ECAPA-TDNN (the verifier training never touches) compares it
with *another* real utterance of the same speaker, as `vc evaluate` does for the reconstruction
row. If a mix that gives R the real clip's X brings the similarity back up, X is what the model
loses; if one that gives the real clip R's X costs nothing, X is not. With ``--cer`` Whisper also
reads each mix (CER against the clip's transcript): where the reconstruction loses the words.

Mixes: per-band means (the long-term spectrum, timbre), per-frame means (the energy contour),
bands of the mel (low, mid, high; each way round), and blurring the real mel in time or in
frequency (how much fine structure the verifier relies on). Prints one line per clip and a
Markdown table (two with ``--cer``).
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
from vc.evaluate import asr, ecapa, speaker        # noqa: E402
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
        f"reconstruction, bands 0-{lo - 1} from the real": torch.cat([M[:lo], R[lo:]]),
        f"reconstruction, bands {lo}-{hi - 1} from the real": torch.cat([R[:lo], M[lo:hi], R[hi:]]),
        f"reconstruction, bands {hi}-{M.shape[0] - 1} from the real": torch.cat([R[:hi], M[hi:]]),
        "real blurred in time (5 frames, 58 ms)": blur(M, 5, 1),
        "real blurred in frequency (3 bands)": blur(M, 3, 0),
    }


def table(values: dict[str, list[float]], digits: int) -> str:
    """One Markdown row per mix: its mean and its paired differences from the reconstruction and
    from the real clip, with 95 % bootstrap intervals."""
    recon, real = np.array(values["reconstruction"]), np.array(values["real (vocoder resynthesis)"])

    def diff(d):
        lo, hi = bootstrap_ci(d) or (0.0, 0.0)
        return f"{d.mean():+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    rows = ["| mel vocoded | mean | minus the reconstruction | minus the real |", "|---|---|---|---|"]
    for name, x in values.items():
        x = np.array(x)
        rows.append(f"| {name} | {x.mean():.{digits}f} | {diff(x - recon)} | {diff(x - real)} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the installed default model)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--clips", type=int, default=1,
                   help="utterances per speaker, each compared with the speaker's next one (default 1)")
    p.add_argument("--cer", action="store_true",
                   help="also score each mix's words: Whisper CER against the clip's transcript (the "
                        "manifest's text, else Whisper's reading of the real clip), capped at 100 %%")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    conv = load(args.model)
    sr = conv.sample_rate
    by_speaker: dict[str, list] = {}
    for u in find_utterances(args.data, args.split):
        by_speaker.setdefault(u.speaker, []).append(u)
    to16k = lambda wav: soxr.resample(wav, sr, speaker.SAMPLE_RATE).astype(np.float32)   # noqa: E731
    sims: dict[str, list[float]] = {}
    cers: dict[str, list[float]] = {}
    for spk, utts in tqdm(sorted(by_speaker.items()), desc="speakers"):
        for i in range(min(args.clips, len(utts) - 1)):
            clip, other = load_audio(utts[i].path, sr), load_audio(utts[i + 1].path, sr)
            reference = ecapa.embed(to16k(other))
            said = (utts[i].text or asr.transcribe(to16k(clip))) if args.cer else ""
            if args.cer and not asr.normalize(said):
                tqdm.write(f"{spk} {i}: no words to score against (empty transcript), skipped")
                continue
            with torch.inference_mode():
                M = conv.mel(clip)
                R = conv.convert_mel(M, conv.model.embed_speaker(M)[0], pitch=conv.pitch(clip))
                for name, mel in mixes(M, R).items():
                    wav16 = to16k(conv.vocode(mel))
                    sims.setdefault(name, []).append(speaker.cosine(ecapa.embed(wav16), reference))
                    if args.cer:
                        cers.setdefault(name, []).append(100 * min(asr.cer(said, asr.transcribe(wav16)), 1.0))
            tqdm.write(f"{spk} {i}: reconstruction {sims['reconstruction'][-1]:.3f}, real {sims['real (vocoder resynthesis)'][-1]:.3f}"
                       + (f"; CER {cers['reconstruction'][-1]:.0f} / {cers['real (vocoder resynthesis)'][-1]:.0f} %" if args.cer else ""))
    n, speakers = len(sims["reconstruction"]), len({s for s, u in by_speaker.items() if len(u) > 1})
    where = f"{n} clips of {speakers} speakers of '{args.split}', model {args.model or 'default'}"
    print(f"\nECAPA similarity to another real utterance of the same speaker ({where}); paired "
          f"differences with 95 % bootstrap intervals:\n\n{table(sims, 3)}")
    if args.cer:
        print(f"\nWhisper CER, capped at 100 %, points ({where}); paired differences with 95 % bootstrap "
              f"intervals:\n\n{table(cers, 1)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
