"""Where does a model with frame attention (vc.frame_attention.FrameAttention) recall the target's frames?

    python scripts/probe_frame_attention.py --model CKPT [--data ../shared/data/manifest.tsv]
        [--split val] [--pairs 20] [--plot gate.png]

On seeded pairs, each source is converted to its target's voice at the model's strength; a hook
reads the gate g (n_mels, T) that the decoder opened, and the same decode without the target's
frames says how far the recall moved the output. Prints, per group of 10 mel bands, the mean gate
in sonorant frames (vowels, nasals: vc.match.sonorance > 0.5) and in the others, and the mean
|log-mel| the recall moved; the plot shows the gate of the first pair over bands and time, and
the mean gate per band. Matching (vc.match) is left out: this is the model alone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vc.convert as convert  # noqa: E402
from vc.data import find_utterances  # noqa: E402
from vc.evaluate import pairs  # noqa: E402
from vc.match import sonorance, speech_frames  # noqa: E402
from vc.model import toward  # noqa: E402

GROUP = 10      # mel bands per row of the table


@torch.inference_mode()
def recall(model, source: torch.Tensor, target: torch.Tensor, strength: float = 1.0):
    """(n_mels, T) source and (n_mels, S) target log-mels -> (gate, moved), each (n_mels, T): the
    gate the decoder opens for each band and frame, and the conversion with the target's speech
    frames minus the one without them (log-mel)."""
    att = model.decoder.attention
    if att is None:
        raise ValueError("this model has no frame attention (ModelConfig.frame_attention)")
    seen = {}
    hook = att.register_forward_hook(lambda mod, inp, out: seen.update(gate=(mod.gate(inp[0]) * mod.bands)[0]))
    try:
        code = model.encode(source)
        vector = toward(code.speaker, model.embed_speaker(target), strength)
        recalled = model.decode(code.with_speaker(vector, model.reference(speech_frames(target))))[0]
    finally:
        hook.remove()
    plain = model.decode(code.with_speaker(vector))[0]
    return seen["gate"][:, : source.shape[1]], recalled - plain


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a checkpoint with frame attention")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write the first pair's gate and the mean per band here (PNG)")
    args = p.parse_args()
    torch.set_num_threads(2)
    conv = convert.load(args.model, vocoder="griffinlim")
    chosen = pairs.subset(pairs.corpus_pairs(find_utterances(args.data, args.split), args.seed), args.pairs, args.seed)
    n = conv.model.cfg.n_mels
    sums = {k: np.zeros(n) for k in ("sonorant", "other", "moved")}
    counts = {"sonorant": 0, "other": 0, "moved": 0}
    first = None
    for pair in tqdm(chosen, desc="pairs"):
        src, tgt = conv.mel(conv.load(pair.source)), conv.mel(conv.load(pair.target))
        gate, moved = recall(conv.model, src, tgt, conv.strength)
        first = gate if first is None else first
        voiced = sonorance(src) > 0.5
        speech = src.mean(0) > src.mean(0).max() - 40 / 20 * np.log(10)
        for name, mask in (("sonorant", voiced & speech), ("other", ~voiced & speech)):
            sums[name] += gate[:, mask].sum(1).numpy()
            counts[name] += int(mask.sum())
        sums["moved"] += moved[:, speech].abs().sum(1).numpy()
        counts["moved"] += int(speech.sum())
    mean = {k: sums[k] / max(1, counts[k]) for k in sums}
    print(f"\n{args.model}: {len(chosen)} {args.split} pairs, strength {conv.strength:g}, no matching")
    print("| mel bands | gate, sonorant frames | gate, other speech frames | |log-mel| moved by the recall |")
    print("|---|---|---|---|")
    for lo in range(0, n, GROUP):
        row = [mean[k][lo: lo + GROUP].mean() for k in ("sonorant", "other", "moved")]
        print(f"| {lo}-{lo + GROUP - 1} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [3, 1]})
        im = a.imshow(first.numpy(), origin="lower", aspect="auto", cmap="magma")
        a.set(xlabel="frame", ylabel="mel band", title="gate, first pair")
        fig.colorbar(im, ax=a)
        for k in ("sonorant", "other"):
            b.plot(mean[k], np.arange(n), label=f"{k} frames")
        b.set(xlabel="mean gate", ylabel="mel band", title=f"{len(chosen)} pairs")
        b.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
