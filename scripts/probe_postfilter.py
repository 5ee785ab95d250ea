"""Do post-filters on the decoder's log-mel, or real target frames in its high bands, bring the voice closer?

    python scripts/probe_postfilter.py --split val --pairs 40        # the default model, ~10 min

The reconstruction keeps about half of a real clip's ECAPA similarity, and what it loses is detail
along the mel axis and in time: blurring a *real* log-mel over 3 bands or 5 frames costs ECAPA
0.07-0.11 (reports/ceiling_probe_v7.md); the GAN critic raised the mel-axis contrast from 0.26 to
0.41 of real speech's 0.52 and ECAPA with it. Statistical parametric synthesis sharpens its
over-smoothed spectra with a post-filter; this probe tries three on the conversions of the model as
users convert (its own strength and envelope matching):

- ``lifter B``: each frame's cepstrum along the mel axis (orthonormal DCT-II) has its coefficients 1
  and up multiplied by B, coefficient 0 (the frame's level) kept: the classic cepstral post-filter
  (Yoshimura et al. 1999; Merlin's 1.4 on mel-cepstra) applied to log-mel.
- ``fine B``: the same on coefficients ``--coeffs`` (20) and up only: the harmonic ripple that
  vc.match's envelope leaves out, the formants untouched.
- ``time L``: an unsharp mask along time, C + L (C - mean of C over 3 frames).

They did not help (reports/postfilter_probe_v10.md), and the ceiling probe's other finding, that the
high bands lose the most, led to three ways of taking those bands from the target's real frames
(bands from ``--band`` up, ramped in over the 10 below; K the mean of each frame's 4 nearest real
target frames, as in vc.match):

- ``hienv W``: envelope matching (vc.match) at weight W in those bands, the model's own below;
- ``hiknn A``: those bands of C move by A toward K, whole frames, fine structure included;
- ``hiknnv A``: the same in sonorant frames only, vc.match.match_high (``--match-high``).

Post-filters act on speech frames only (vc.match.speech_mask of the conversion), so pauses are not
roughened; the matching variants act on every frame, as vc.match does. Scored per seeded pair of `vc evaluate`'s pairs: ECAPA similarity to the target clip, to
ANOTHER clip of the target speaker and to the source; Whisper CER against the source's transcript;
DNSMOS; the mel-axis contrast (mean |difference of neighbouring bands| in speech frames). Paired
differences from the plain conversion with 95 % bootstrap intervals.
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
from vc.audio import load_audio                            # noqa: E402
from vc.convert import load                                # noqa: E402
from vc.data import find_utterances                        # noqa: E402
from vc.evaluate import asr, ecapa, speaker                # noqa: E402
from vc.evaluate.pairs import corpus_pairs, subset         # noqa: E402
from vc.evaluate.quality import dnsmos                     # noqa: E402
from vc.evaluate.report import bootstrap_ci                # noqa: E402
from vc.match import (ENVELOPE_COEFFS, K, band_ramp, dct_matrix, envelope_shift, match_high,  # noqa: E402
                      nearest_frames, speech_frames, speech_mask)


def lifter(mel: torch.Tensor, gain: float, first: int = 1) -> torch.Tensor:
    """(n_mels, T) -> (n_mels, T): cepstral coefficients ``first`` and up multiplied by ``gain``."""
    d = dct_matrix(mel.shape[0], mel.device).to(mel.dtype)
    c = d @ mel
    c[first:] *= gain
    return d.T @ c


def time_sharpen(mel: torch.Tensor, amount: float, width: int = 3) -> torch.Tensor:
    """(n_mels, T) -> (n_mels, T): C + amount * (C - C averaged over ``width`` frames)."""
    blur = F.avg_pool1d(mel[None], width, 1, width // 2, count_include_pad=False)[0]
    return mel + amount * (mel - blur)


def contrast(mel: torch.Tensor) -> float:
    """Mean |difference between neighbouring mel bins| over the speech frames."""
    s = speech_frames(mel)
    return float((s[1:] - s[:-1]).abs().mean()) if s.shape[1] else float("nan")


def high_match(C0: torch.Tensor, bank: torch.Tensor, base: float, weight: float, band: int) -> torch.Tensor:
    """Envelope matching (vc.match) at ``base`` below ``band`` and ``weight`` from it up."""
    w = base + (weight - base) * band_ramp(C0.shape[0], band)
    return C0 + w * envelope_shift(C0, bank)


def high_knn(C: torch.Tensor, bank: torch.Tensor, alpha: float, band: int) -> torch.Tensor:
    """C with its bands from ``band`` up mixed (weight ``alpha``) with the mean of each frame's K
    nearest real target frames (whole frames: fine structure, not only the envelope)."""
    return C + alpha * band_ramp(C.shape[0], band) * (nearest_frames(C, bank, K) - C)


def parse_variants(text: str, coeffs: int, band: int = 50):
    """'lifter 1.2,fine 1.5,time 0.5,hienv 0.5,hiknn 0.25,hiknnv 0.5@40' -> [(label, function)]:
    a post-filter of C (the conversion as users get it), or a matching variant: a function of (C or
    C0, the target's speech frames, the model's matching weight), C0 being C before matching.
    '@B' sets the first fully changed band of one variant (default --band); for hiknnv, '/K' the
    nearest frames averaged ('hiknnv 0.5@50/1'; default vc.match.K)."""
    out = [("plain", lambda m: m)]
    for item in filter(None, (t.strip() for t in text.split(","))):
        kind, value = item.split()
        value, _, at = value.partition("@")              # 'hiknn 0.5@40': band 40 for this variant
        at, _, near = at.partition("/")                  # 'hiknnv 0.5@50/1': and its 1 nearest frame
        k = int(near) if near else K
        v, b = float(value), int(at) if at else band
        if kind == "lifter":
            out.append((item, lambda m, v=v: lifter(m, v)))
        elif kind == "fine":
            out.append((item, lambda m, v=v: lifter(m, v, coeffs)))
        elif kind == "time":
            out.append((item, lambda m, v=v: time_sharpen(m, v)))
        elif kind == "hienv":
            out.append((item, ("C0", lambda C0, bank, base, v=v, b=b: high_match(C0, bank, base, v, b))))
        elif kind == "hiknnv":
            out.append((item, ("C", lambda C, bank, base, v=v, b=b, k=k: match_high(C, bank, v, k=k, band=b))))
        elif kind == "hiknn":
            out.append((item, ("C", lambda C, bank, base, v=v, b=b: high_knn(C, bank, v, b))))
        else:
            raise SystemExit(f"unknown variant '{kind}' (lifter, fine, time, hienv, hiknn, hiknnv)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the installed default model)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="lifter 1.2,lifter 1.4,fine 1.5,time 0.5")
    p.add_argument("--coeffs", type=int, default=ENVELOPE_COEFFS, help="'fine': the first coefficient lifted")
    p.add_argument("--band", type=int, default=50, help="hienv, hiknn, hiknnv: the first mel band fully changed")
    p.add_argument("--match-high", type=float, default=None, metavar="W",
                   help="the conversion's own high-band matching (default: the model's; 0 to compare "
                        "hiknnv variants of a model that has it on)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = parse_variants(args.variants, args.coeffs, args.band)
    conv = load(args.model, match_high=args.match_high)
    sr = conv.sample_rate
    pairs = subset(corpus_pairs(find_utterances(args.data, args.split), args.seed), args.pairs, args.seed)
    to16 = lambda w: soxr.resample(w, sr, 16000).astype(np.float32)   # noqa: E731
    keys = ("target", "other", "source", "cer", "dnsmos", "contrast")
    rows = {label: {k: [] for k in keys} for label, _ in variants}
    real_contrast = []
    for pair in tqdm(pairs, desc="pairs"):
        src, tgt = load_audio(pair.source, sr), load_audio(pair.target, sr)
        e_tgt, e_src = ecapa.embed(to16(tgt)), ecapa.embed(to16(src))
        e_other = ecapa.embed(to16(load_audio(pair.ceiling, sr)))
        said = pair.text or asr.transcribe(to16(src))
        with torch.inference_mode():
            m_src, m_tgt = conv.mel(src), conv.mel(tgt)
            real_contrast.append(contrast(m_tgt.float()))
            voice = conv.target(tgt)
            pitch = conv.pitch(src)
            bank = speech_frames(m_tgt.float())      # what vc.match takes, whether the model matches or not
            C0 = conv.convert_mel(m_src, voice.vector, pitch=pitch).float()      # unmatched
            C = conv.matched(C0, voice.frames).float()
            speech = speech_mask(C)
            for label, post in variants:
                if isinstance(post, tuple):                   # a matching variant: (what it starts from, how)
                    start, fn = post
                    out = fn(C0 if start == "C0" else C, bank, conv.match)
                else:
                    out = C.clone()
                    out[:, speech] = post(C)[:, speech]
                wav = conv.vocode(out)
                e = ecapa.embed(to16(wav))
                r = rows[label]
                r["target"].append(speaker.cosine(e, e_tgt))
                r["other"].append(speaker.cosine(e, e_other))
                r["source"].append(speaker.cosine(e, e_src))
                r["cer"].append(100 * (asr.cer(said, asr.transcribe(to16(wav))) or 0.0))
                r["dnsmos"].append(dnsmos(to16(wav))["ovrl"])
                r["contrast"].append(contrast(out))
    scores = {label: {k: np.array(x) for k, x in r.items()} for label, r in rows.items()}
    base = scores["plain"]
    print(f"\n{len(pairs)} seeded pairs of '{args.split}', model {args.model or 'default'} at strength "
          f"{conv.strength:g}, match {conv.match:g}, match-high {conv.match_high:g}; real target clips' "
          f"contrast {np.mean(real_contrast):.3f}; in brackets: paired difference from 'plain', 95 % "
          "bootstrap interval\n")
    print("| post-filter | ECAPA sim to target | to another target clip | to source | CER % | DNSMOS | contrast |")
    print("|---|---|---|---|---|---|---|")
    for label, _ in variants:
        x, cells = scores[label], []
        for key in keys:
            d = x[key] - base[key]
            lo, hi = bootstrap_ci(d) or (0.0, 0.0)
            cells.append(f"{x[key].mean():.3f}" + ("" if label == "plain" else f" ({d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}])"))
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
