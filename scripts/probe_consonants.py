"""Do the source's consonants give the conversion its words back? `vc evaluate` with one step added.

    python scripts/probe_consonants.py --weight 1 -- evaluate --model vc/pretrained/default.pt \
        --data ../shared/data/manifest.tsv --split val --max-pairs 132 --systems converted \
        --out runs/consonants1/val_eval                                   # ~5 min on one core

The reconstruction loses the most words in the high bands (reports/ceiling_words_probe_v11.md),
and v11's high-band matching touches only sonorant frames. A conversion keeps the source's timing
frame for frame, so its fricatives and bursts are where the source's are (vc.match.consonant_weights
of the source: high bands of its non-sonorant speech frames). There the step lays the source's
pattern on the conversion, each band's mean over those frames kept the conversion's own:

    out = C + w * W * ((S - mean_W S) - (C - mean_W C))

C the model's output after matching, S the source's log-mel, W = consonant_weights(S), the means
per band over time weighted by W. It is the inference-time twin of the training option
``obstruent_on: swap`` with ``obstruent_centre`` (vc.losses.obstruent), which asks the decoder for
the same thing. The step is added to vc.convert.Converter.convert_mel, so every system `vc evaluate`
scores goes through it. Results: reports/consonant_probe_v11.md.

``--colour``: the other half. Keep the conversion's pattern and give its consonants the target's
average colour instead: each band's mean over the target's consonant frames (its speech frames that
matching gets, weighted by consonant_weights) in place of the conversion's own,

    out = C + w * W * (mean_WT T - mean_W C),

a static shift per band on the consonant frames only (v11's high-band matching reaches the
sonorant frames only, and frame by frame).

``--strict``: about half the speech frames are partly non-sonorant (vowels with strong high
bands); with it only the frames whose high bands are as loud as their low ones count (fricatives
proper, ~11 % of speech frames).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vc.cli import main                                      # noqa: E402
from vc.convert import Converter                             # noqa: E402
from vc.match import band_means, consonant_weights           # noqa: E402


def with_consonants(converted: torch.Tensor, source: torch.Tensor, weight: float,
                    strict: bool = False) -> torch.Tensor:
    """(n_mels, T) conversion and (n_mels, T) source -> the conversion with ``weight`` of the
    source's consonant pattern in place of its own (see the module's docstring)."""
    c, s = converted.float(), source.float()
    w = consonant_weights(s, strict)
    return c + weight * w * ((s - band_means(s, w)) - (c - band_means(c, w)))


def with_target_colour(converted: torch.Tensor, source: torch.Tensor, bank: torch.Tensor,
                       weight: float, strict: bool = False) -> torch.Tensor:
    """(n_mels, T) conversion and source, (n_mels, S) the target's speech frames -> the conversion
    with ``weight`` of the target's average consonant colour in place of its own (``--colour``)."""
    c, b = converted.float(), bank.float()
    w = consonant_weights(source.float(), strict)
    return c + weight * w * (band_means(b, consonant_weights(b, strict)) - band_means(c, w))


def patch(weight: float, colour: bool = False, strict: bool = False) -> None:
    """Route every Converter.convert_mel through :func:`with_consonants` (or
    :func:`with_target_colour`, which needs the target's frames: a conversion without them is left as is)."""
    plain = Converter.convert_mel

    def convert_mel(self, source, speaker, own=None, pitch=None, frames=None):
        out = plain(self, source, speaker, own=own, pitch=pitch, frames=frames)
        if colour:
            return out if frames is None else with_target_colour(out, source, frames, weight, strict)
        return with_consonants(out, source, weight, strict)
    Converter.convert_mel = convert_mel


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weight", type=float, default=1.0, help="how much of the source's consonant pattern (0: none)")
    p.add_argument("--colour", action="store_true", help="the target's average consonant colour instead")
    p.add_argument("--strict", action="store_true", help="fricatives proper only: frames whose high bands "
                   "are as loud as their low ones (vc.match.consonant_weights)")
    p.add_argument("vc_args", nargs=argparse.REMAINDER, help="-- then the vc command (evaluate ...)")
    args = p.parse_args()
    what = "the target's consonant colour" if args.colour else "the source's consonant pattern"
    print(f"probe: {what} at weight {args.weight:g}{' (strict)' if args.strict else ''}", flush=True)
    patch(args.weight, args.colour, args.strict)
    sys.argv = ["vc", *(args.vc_args[1:] if args.vc_args[:1] == ["--"] else args.vc_args)]
    raise SystemExit(main())
