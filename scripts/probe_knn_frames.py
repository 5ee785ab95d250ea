"""Does replacing each converted frame by its nearest real frames of the target bring the voice closer?

    python scripts/probe_knn_frames.py --split val --pairs 40          # the default model, ~10 min

kNN-VC (Baas, van Niekerk and Kamper 2023) converts by replacing each source frame's features with
the mean of its k nearest frames of the target speaker: every output frame is then real target
speech. This probe tries the idea as a post-step on our conversions, in log-mel space: each frame of
the plain conversion C (the model's strength) is matched, by Euclidean distance, to the k nearest
speech frames of the target clip's real log-mel (frames within 40 dB of its loudest); K is their
mean, and the output is (1 - a) C + a K for each --alpha a (a = 0: the plain conversion). With
--envelope only the spectral envelopes move: C + a (E(K) - E(C)), E keeping the first 20 (--coeffs) cepstral
coefficients along the mel axis, so that C keeps its own harmonics (its pitch) and takes the nearest
real frames' formants; --smooth averages that shift over a few frames (vc.match's ``smooth``).
--strength scores C at several conversion strengths (vc.convert's), to place matching against
the other way to move a voice.

Scored per seeded pair of `vc evaluate`'s pairs: ECAPA similarity to ANOTHER clip of the target
speaker (the target clip itself would be unfair: K is made of its frames) and to the source,
Whisper CER against the source's transcript, DNSMOS. Paired differences from a = 0 with 95 %
bootstrap intervals. The envelope form is now in the package: vc/match.py, `--match`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soxr
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vc.audio import load_audio                            # noqa: E402
from vc.convert import load                                # noqa: E402
from vc.data import find_utterances                        # noqa: E402
from vc.evaluate import asr, ecapa, speaker                # noqa: E402
from vc.evaluate.pairs import corpus_pairs, subset         # noqa: E402
from vc.evaluate.quality import dnsmos                     # noqa: E402
from vc.evaluate.report import bootstrap_ci                # noqa: E402
from vc.match import ENVELOPE_COEFFS, match_envelope, nearest_frames, speech_frames   # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the installed default model)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--alpha", default="0.5,1", help="comma-separated mixing weights of the matched frames")
    p.add_argument("--envelope", action="store_true", help="move only the spectral envelope (see above)")
    p.add_argument("--coeffs", type=int, default=ENVELOPE_COEFFS, help="--envelope: cepstral coefficients kept")
    p.add_argument("--smooth", default="1", help="--envelope: comma-separated moving-average lengths (odd "
                   "frames) of the envelope shift over time; each is scored at each --alpha")
    p.add_argument("--strength", default=None, help="comma-separated conversion strengths of C (default: "
                   "the model's own); each is scored at each --alpha, a = 0 at the first only")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    alphas = [0.0] + [float(a) for a in args.alpha.split(",")]
    smooths = [int(n) for n in args.smooth.split(",")] if args.envelope else [1]
    conv = load(args.model, match=0.0)        # C is the plain conversion, whatever the model's default
    strengths = [float(x) for x in args.strength.split(",")] if args.strength else [conv.strength]
    variants = [(strengths[0], 0.0, 1)] + [(st, a, n) for st in strengths for a in alphas[1:] for n in smooths]
    sr = conv.sample_rate
    pairs = subset(corpus_pairs(find_utterances(args.data, args.split), args.seed), args.pairs, args.seed)
    to16 = lambda w: soxr.resample(w, sr, 16000).astype(np.float32)   # noqa: E731
    rows = {v: {"other": [], "source": [], "cer": [], "dnsmos": [], "bak": []} for v in variants}
    for pair in tqdm(pairs, desc="pairs"):
        src, tgt = load_audio(pair.source, sr), load_audio(pair.target, sr)
        e_other = ecapa.embed(to16(load_audio(pair.ceiling, sr)))
        e_src = ecapa.embed(to16(src))
        said = pair.text or asr.transcribe(to16(src))
        with torch.inference_mode():
            m_src, m_tgt = conv.mel(src), conv.mel(tgt)
            pitch = conv.pitch(src)
            v_src, v_tgt = conv.voice(m_src, pitch), conv.voice(m_tgt, conv.pitch(tgt))
            bank = speech_frames(m_tgt.float())
            plain = {}                       # C at each strength, decoded once
            for st in strengths:
                conv.strength = st
                plain[st] = conv.convert_mel(m_src, v_tgt, own=v_src, pitch=pitch).float()
            for st, a, n in variants:        # the envelope form is what the package does (--match a)
                C = plain[st]
                out = (match_envelope(C, bank, a, args.k, args.coeffs, n) if args.envelope
                       else (1 - a) * C + a * nearest_frames(C, bank, args.k))
                wav = conv.vocode(out)
                e = ecapa.embed(to16(wav))
                r = rows[st, a, n]
                r["other"].append(speaker.cosine(e, e_other))
                r["source"].append(speaker.cosine(e, e_src))
                r["cer"].append(100 * (asr.cer(said, asr.transcribe(to16(wav))) or 0.0))
                mos = dnsmos(to16(wav))
                r["dnsmos"].append(mos["ovrl"])
                r["bak"].append(mos["bak"])
    scores = {v: {k: np.array(x) for k, x in r.items()} for v, r in rows.items()}
    for x in scores.values():
        x["margin"] = x["other"] - x["source"]
    print(f"\n{len(pairs)} seeded pairs of '{args.split}', model {args.model or 'default'}, k {args.k}"
          f"{f', envelope only ({args.coeffs} coefficients)' if args.envelope else ''}; "
          "in brackets: paired difference from the first row (on a 'vs' line: from the first "
          "strength, or the first smooth, at the same a), 95 % bootstrap interval\n")
    print("| strength | a | smooth | ECAPA sim to another target clip | to source | margin | CER % | DNSMOS | DNSMOS BAK |")
    print("|---|---|---|---|---|---|---|---|---|")
    for st, a, n in variants:
        x = scores[st, a, n]
        lines = [("", scores[variants[0]])] if a else [("", None)]
        if a and n != smooths[0]:
            lines.append((f"vs smooth {smooths[0]}", scores[st, a, smooths[0]]))
        if a and st != strengths[0]:
            lines.append((f"vs strength {strengths[0]:g}", scores[strengths[0], a, n]))
        for label, base in lines:
            cells = []
            for key in ("other", "source", "margin", "cer", "dnsmos", "bak"):
                d = None if base is None else x[key] - base[key]
                lo, hi = (0.0, 0.0) if d is None else (bootstrap_ci(d) or (0.0, 0.0))
                cells.append((f"{x[key].mean():.3f}" if not label else "")
                             + ("" if d is None else f" ({d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}])"))
            print(f"| {st:g} | {a:g} | {label or n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
