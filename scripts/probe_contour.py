"""Does the source's energy contour give the conversion its words back? `vc evaluate` with one step added.

    python scripts/probe_contour.py --weight 1 -- evaluate --model vc/pretrained/default.pt \
        --data ../shared/data/manifest.tsv --split val --max-pairs 132 \
        --systems converted,reconstruction --out runs/contour1/val_eval      # ~10 min on one core

The decoder rebuilds 86 frames a second from 21 content codes a second, and its output's energy
contour (each frame's mean log-mel over the bands: loudness over time, the onsets and closures of
consonants) is smoother than the input's. `scripts/probe_ceiling.py --cer` measures what that costs
Whisper. The contour carries little of a voice (ECAPA: giving the reconstruction the real one,
+0.003 n.s., reports/ceiling_probe_v7.md), and a conversion has the source's timing frame for
frame, so the source's contour can be laid on it:

    out = C + w * ((e_S - mean e_S) - (e_C - mean e_C)),   e_X(t) = mean over bands of X[:, t]

C the model's output after matching, S the source's log-mel, means over the utterance: C keeps
its own level and spectrum, and takes the source's ups and downs in time. The step is added to
vc.convert.Converter.convert_mel, so every system `vc evaluate` scores goes through it (the
reconstruction too: its "source" is the clip itself). Results: reports/contour_probe_v11.md (not kept).

``--speech-only``: the step only on the source's speech frames (vc.match.speech_mask), the means
over those frames: pauses keep the conversion's own level and noise floor (at w = 1 on every frame,
DNSMOS fell 0.10, mostly its background score).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vc.cli import main                                      # noqa: E402
from vc.convert import Converter                             # noqa: E402
from vc.match import speech_mask                             # noqa: E402


def contour(mel: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
    """(n_mels, T) log-mel -> (1, T): each frame's mean over the bands, less its mean over time
    (over the (T,) bool ``frames`` only, when given)."""
    e = mel.float().mean(0, keepdim=True)
    return e - (e.mean() if frames is None else e[:, frames].mean())


def with_contour(converted: torch.Tensor, source: torch.Tensor, weight: float,
                 speech_only: bool = False) -> torch.Tensor:
    """(n_mels, T) conversion and (n_mels, T) source -> the conversion with ``weight`` of the
    source's energy contour in place of its own (see the module's docstring); with
    ``speech_only``, on the source's speech frames only."""
    speech = speech_mask(source.float()) if speech_only else torch.ones(source.shape[1], dtype=torch.bool, device=source.device)
    return converted.float() + weight * speech * (contour(source, speech) - contour(converted, speech))


def patch(weight: float, speech_only: bool = False) -> None:
    """Route every Converter.convert_mel through :func:`with_contour`."""
    plain = Converter.convert_mel

    def convert_mel(self, source, speaker, own=None, pitch=None, frames=None):
        return with_contour(plain(self, source, speaker, own=own, pitch=pitch, frames=frames), source, weight,
                            speech_only)
    Converter.convert_mel = convert_mel


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weight", type=float, default=1.0, help="how much of the source's contour (0: none)")
    p.add_argument("--speech-only", action="store_true", help="only on the source's speech frames")
    p.add_argument("vc_args", nargs=argparse.REMAINDER, help="-- then the vc command (evaluate ...)")
    args = p.parse_args()
    where = " on its speech frames" if args.speech_only else ""
    print(f"probe: the source's energy contour at weight {args.weight:g}{where}", flush=True)
    patch(args.weight, args.speech_only)
    sys.argv = ["vc", *(args.vc_args[1:] if args.vc_args[:1] == ["--"] else args.vc_args)]
    raise SystemExit(main())
