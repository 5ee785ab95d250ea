"""Which inference-time change makes a conversion sound like an unseen target? (no training)

    python scripts/probe_inference.py --model vc/pretrained/default.pt --split val --pairs 40

The model renders the voices it trained on far better than unseen ones (reports/libri_seen_vs_unseen.md).
This probe keeps the model as it is and changes only the speaker vector given to the decoder, or
the decoded log-mel, for the same seeded (source, target) pairs that `vc evaluate --max-pairs` scores:
  own          the target clip's own vector (what `vc convert` does)
  extrap B     source vector + B * (target - source): push further from the source
  knn-own K    the mean vector of the K training speakers nearest to the target, nearest by
               cosine in the model's own speaker space
  knn-res K    the same, nearest by Resemblyzer d-vector (a speaker space learned from thousands
               of speakers)
  blend        half the target's own vector, half a retrieved one
  prewarp      the content encoder reads the source's log-mel warped along the mel axis by the
               ratio (0.85-1.15, what training's perturbation covers) that best matches its
               long-term spectrum to the target clip's; "half": the square root of that ratio
  band-match A the plain conversion's log-mel with A times the difference between the target clip's
               and the conversion's per-band means added (a long-term spectrum post-filter)
A training speaker's vector is the mean over up to --per-speaker of its utterances (split `train`).
Each conversion is vocoded with HiFi-GAN and scored by ECAPA-TDNN (the verifier that training never
touches) against the target clip and against another clip of the target speaker (the pair's ceiling
clip, which no vector was computed from), and against the source clip. Prints a Markdown table of
means and paired differences from `own` with 95 % bootstrap intervals.
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
from vc import dvectors                                    # noqa: E402
from vc.audio import load_audio                            # noqa: E402
from vc.augment import warp_voice as warp                  # noqa: E402
from vc.convert import load                                # noqa: E402
from vc.data import build_cache, cache_path, find_utterances, load_cached   # noqa: E402
from vc.evaluate import ecapa, speaker                     # noqa: E402
from vc.evaluate.pairs import by_speaker, corpus_pairs, subset   # noqa: E402
from vc.evaluate.report import bootstrap_ci                # noqa: E402
from vc.model import toward                                # noqa: E402


def speaker_bank(conv, utts, cache_dir, per_speaker: int, with_dvectors: bool):
    """(names, (N, speaker_dim) mean model vectors, (N, 256) mean d-vectors or None)."""
    chosen = [u for name, us in sorted(by_speaker(utts).items()) for u in us[:per_speaker]]
    build_cache(chosen, cache_dir, conv.mel_cfg, workers=2)
    dvec = dvectors.build(chosen, cache_dir) if with_dvectors else None
    names, vecs, dvecs = [], [], []
    with torch.inference_mode():
        for name, us in tqdm(sorted(by_speaker(chosen).items()), desc="speaker bank"):
            mels = [torch.from_numpy(load_cached(cache_path(cache_dir, u.path, conv.mel_cfg))) for u in us]
            vecs.append(torch.stack([conv.model.embed_speaker(m)[0] for m in mels]).mean(0))
            if dvec is not None:
                d = np.mean([dvec[u.path] for u in us], axis=0)
                dvecs.append(torch.from_numpy(d / np.linalg.norm(d)))
            names.append(name)
    return names, torch.stack(vecs), (torch.stack(dvecs) if dvecs else None)


def nearest_mean(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of ``values`` rows whose ``keys`` are the k nearest to ``query`` by cosine."""
    sims = F.cosine_similarity(keys, query[None], dim=1)
    return values[sims.topk(k).indices].mean(0)


def long_term_spectrum(mel: torch.Tensor) -> torch.Tensor:
    """Per-band mean of the louder half of the frames, its own mean removed: (n_mels,)."""
    loud = mel[:, mel.mean(0) >= mel.mean(0).median()]
    s = loud.mean(1)
    return s - s.mean()


def best_warp(src: torch.Tensor, tgt: torch.Tensor, low: float = 0.85, high: float = 1.15, n: int = 31) -> float:
    """The warp ratio of ``src`` whose long-term spectrum is nearest (L2) to ``tgt``'s."""
    target = long_term_spectrum(tgt)
    ratios = np.linspace(low, high, n)
    errs = [float(((long_term_spectrum(warp(src, r)) - target) ** 2).mean()) for r in ratios]
    return float(ratios[int(np.argmin(errs))])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the installed default model)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--bank-split", default="train")
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-speaker", type=int, default=5, help="bank utterances per training speaker")
    p.add_argument("--cache", default=str(Path.home() / "vc-runs" / "cache"))
    p.add_argument("--no-resemblyzer", action="store_true", help="skip the knn-res variants")
    p.add_argument("--only", default="", help="comma-separated variants to score (default: all)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)

    conv = load(args.model)
    sr = conv.sample_rate
    names, bank, dbank = speaker_bank(conv, find_utterances(args.data, args.bank_split), args.cache,
                                      args.per_speaker, not args.no_resemblyzer)
    print(f"bank: {len(names)} speakers of '{args.bank_split}'")
    pairs = subset(corpus_pairs(find_utterances(args.data, args.split), seed=args.seed), args.pairs, seed=args.seed)
    enc = dvectors._encoder() if dbank is not None else None
    embed = lambda wav: ecapa.embed(soxr.resample(wav, sr, speaker.SAMPLE_RATE).astype(np.float32))   # noqa: E731

    scores: dict[str, dict[str, list[float]]] = {}
    ratios: list[float] = []
    for pair in tqdm(pairs, desc="pairs"):
        src, tgt = load_audio(pair.source, sr), load_audio(pair.target, sr)
        e_src, e_tgt, e_other = embed(src), embed(tgt), embed(load_audio(pair.ceiling, sr))
        with torch.inference_mode():
            m_src, m_tgt = conv.mel(src), conv.mel(tgt)
            v_s, v_t = conv.model.embed_speaker(m_src)[0], conv.model.embed_speaker(m_tgt)[0]
            variants = {"own": v_t, "extrap 1.5": toward(v_s, v_t, 1.5), "extrap 2": toward(v_s, v_t, 2.0)}
            for k in (1, 5):
                variants[f"knn-own {k}"] = nearest_mean(v_t, bank, bank, k)
            variants["blend own + knn-own 5"] = 0.5 * (v_t + variants["knn-own 5"])
            if dbank is not None:
                d_t = torch.from_numpy(dvectors.embed_file(enc, pair.target))
                for k in (1, 5):
                    variants[f"knn-res {k}"] = nearest_mean(d_t, dbank, bank, k)
                variants["blend own + knn-res 5"] = 0.5 * (v_t + variants["knn-res 5"])
            keep = {"own", *args.only.split(",")} if args.only else set(variants) | {"band-match 0.5", "band-match 1", "prewarp", "prewarp half"}
            mels = {name: conv.convert_mel(m_src, v) for name, v in variants.items() if name in keep}
            r = best_warp(m_src, m_tgt)
            ratios.append(r)
            for name, rr in (("prewarp", r), ("prewarp half", r ** 0.5)):
                if name in keep:
                    code = conv.model.encode(warp(m_src, rr))
                    mels[name] = conv.model.decode(code.with_speaker(v_t[None]))[0]
            shift = m_tgt.mean(1, keepdim=True) - mels["own"].mean(1, keepdim=True)
            for a in (0.5, 1.0):
                mels[f"band-match {a:g}"] = mels["own"] + a * shift
            for name, mel in mels.items():
                if name not in keep:
                    continue
                e = embed(conv.vocode(mel))
                s = scores.setdefault(name, {})
                for key, ref in (("target", e_tgt), ("other", e_other), ("source", e_src)):
                    s.setdefault(key, []).append(speaker.cosine(e, ref))
    n = len(pairs)
    print(f"prewarp ratios: mean {np.mean(ratios):.3f}, min {np.min(ratios):.3f}, max {np.max(ratios):.3f}, "
          f"at a limit {np.mean((np.array(ratios) <= 0.851) | (np.array(ratios) >= 1.149)) * 100:.0f} %")
    own = {k: np.array(v) for k, v in scores["own"].items()}

    def cell(x, base):
        lo, hi = bootstrap_ci(x - base) or (0.0, 0.0)
        return f"{x.mean():.3f} ({(x - base).mean():+.3f} [{lo:+.3f}, {hi:+.3f}])"
    print(f"\nECAPA cosine of the conversion ({n} seeded pairs of '{args.split}', model {args.model or 'default'}); "
          "in brackets: paired difference from `own`, 95 % bootstrap interval. margin = sim to target - sim to source;"
          " other = another clip of the target speaker.\n")
    print("| variant | sim to target | sim to other clip | sim to source | margin | closer to target |")
    print("|---|---|---|---|---|---|")
    for name, s in scores.items():
        t, o, src = (np.array(s[k]) for k in ("target", "other", "source"))
        m, m0 = t - src, own["target"] - own["source"]
        print(f"| {name} | {cell(t, own['target'])} | {cell(o, own['other'])} | {cell(src, own['source'])} "
              f"| {cell(m, m0)} | {100 * (m > 0).mean():.0f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
