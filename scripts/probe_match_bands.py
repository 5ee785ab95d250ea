"""Where does envelope matching cost words: `vc evaluate` with vc.match's envelope shift reshaped.

    python scripts/probe_match_bands.py --band-from 30 -- evaluate --model vc/pretrained/default.pt \
        --data ../shared/data/manifest.tsv --split val --max-pairs 132 --systems converted \
        --match 0.25 --out runs/probe_f30/val_eval                  # ~6 min on one core

Envelope matching (vc/match.py) moves every output frame's envelope by W toward its nearest real
target frames, over all mel bands. On v11 it buys ECAPA margin +0.039 for CER +2.8 and DNSMOS -0.040
(val, s49). This probe runs `vc evaluate` unchanged except for that one step, so that the scores
are those of every other screening row:

- ``--band-from B``: the shift is applied from mel band B up only, ramped in over the ``--width``
  bands below (vc.match.band_ramp); the low bands keep the decoder's own envelope;
- ``--coeffs N``: the envelope keeps N cepstral coefficients instead of vc.match's 20;
- ``--cmn``: the nearest target frames are chosen with each side's mean log-mel (per band, over
  its speech frames) removed, so that neighbours are chosen by the shape of the frame rather than
  by a level or tilt the conversion has not matched; the shift is then toward the raw neighbours.

Results: reports/match_bands_probe_v11.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vc.convert as convert                                 # noqa: E402
from vc import match                                         # noqa: E402
from vc.cli import main                                      # noqa: E402


def reshaped(band_from: int, width: int, coeffs: int, cmn: bool):
    """vc.match.match_envelope with the probe's changes (same signature, so vc.convert calls it)."""
    def match_envelope(mel: torch.Tensor, bank: torch.Tensor, weight: float, k: int = match.K) -> torch.Tensor:
        if weight == 0 or bank.shape[1] == 0:
            return mel
        if cmn:
            q, b = mel.detach().float(), bank.detach().float()
            q_mean, b_mean = q[:, match.speech_mask(q)].mean(1, keepdim=True), b.mean(1, keepdim=True)
            near = match.nearest_frames(q - q_mean, b - b_mean, k) + b_mean
            shift = match.envelope(near, coeffs) - match.envelope(mel.float(), coeffs)
        else:
            shift = match.envelope_shift(mel, bank, k, coeffs)           # vc.match's own step
        if band_from > 0:
            shift = shift * match.band_ramp(mel.shape[0], band_from, width).to(mel.device)
        return mel.float() + weight * shift
    return match_envelope


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--band-from", type=int, default=0, help="first mel band fully shifted (0: all)")
    p.add_argument("--width", type=int, default=10, help="bands below --band-from ramped in")
    p.add_argument("--coeffs", type=int, default=match.ENVELOPE_COEFFS, help="cepstral coefficients kept")
    p.add_argument("--cmn", action="store_true", help="choose neighbours with each side's mean removed")
    p.add_argument("vc_args", nargs=argparse.REMAINDER, help="-- then the vc command (evaluate ...)")
    args = p.parse_args()
    rest = args.vc_args[1:] if args.vc_args[:1] == ["--"] else args.vc_args
    print(f"probe: envelope shift from band {args.band_from} (ramp {args.width}), {args.coeffs} "
          f"coefficients, mean-removed neighbours {args.cmn}", flush=True)
    convert.match_envelope = reshaped(args.band_from, args.width, args.coeffs, args.cmn)
    sys.argv = ["vc", *rest]
    raise SystemExit(main())
