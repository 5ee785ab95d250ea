"""Does CAM++ hear through vc's mel bridge (vc.speaker_judge.CamppJudge) what it hears from Kaldi's
own filter bank of the waveform?

For two utterances of each of N speakers of a split, CAM++ embeds each clip twice: from
kaldi-native-fbank's 80-band filter bank of the 16 kHz waveform (the input it was trained on), and
from vc's log-mel of the same clip through the bridge (what `speaker_judge: campplus` trains with).
Printed: the cosine between the two embeddings of each clip, and for each path the mean cosine of
same-speaker and different-speaker pairs with the share of (same, different) pairs ranked right.

    pip install kaldi-native-fbank     # the reference filter bank; nothing else needs it
    python scripts/probe_campplus_bridge.py --split val --speakers 12     # ~1 min
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vc.audio import load_audio  # noqa: E402
from vc.data import find_utterances  # noqa: E402
from vc.features import mel_spectrogram  # noqa: E402
from vc.speaker_judge import CamppJudge  # noqa: E402


def kaldi_fbank(wav16: np.ndarray) -> np.ndarray:
    """(frames, 80) Kaldi filter bank of a 16 kHz waveform, mean over time removed (CAM++'s input)."""
    import kaldi_native_fbank as knf
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, wav16.tolist())
    fbank.input_finished()
    feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    return feats - feats.mean(0)


def ranked_right(emb: torch.Tensor, speakers: list[str]) -> tuple[float, float, float]:
    pairs = list(itertools.combinations(range(len(speakers)), 2))
    same = [float(emb[i] @ emb[k]) for i, k in pairs if speakers[i] == speakers[k]]
    diff = [float(emb[i] @ emb[k]) for i, k in pairs if speakers[i] != speakers[k]]
    return np.mean(same), np.mean(diff), np.mean([a > b for a in same for b in diff])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "manifest.tsv"))
    p.add_argument("--split", default="val")
    p.add_argument("--speakers", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    by_speaker = {}
    for utt in find_utterances(args.data, split=args.split):
        by_speaker.setdefault(utt.speaker, []).append(utt.path)
    chosen = sorted(s for s in by_speaker if len(by_speaker[s]) >= 2)[:args.speakers]
    judge = CamppJudge()
    kaldi, bridged, speakers = [], [], []
    for speaker in chosen:
        for path in by_speaker[speaker][:2]:
            wav = load_audio(path)                    # 22,050 Hz, trimmed, loudness-normalised
            feats = torch.from_numpy(kaldi_fbank(librosa.resample(wav, orig_sr=22050, target_sr=16000)))
            with torch.no_grad():
                kaldi.append(F.normalize(judge.encoder(feats.float()[None]), dim=1)[0])
                bridged.append(judge(mel_spectrogram(wav)[None])[0])
            speakers.append(speaker)
    kaldi, bridged = torch.stack(kaldi), torch.stack(bridged)
    both = (kaldi * bridged).sum(1)
    print(f"{len(speakers)} clips of {len(chosen)} '{args.split}' speakers")
    print(f"cosine of the two embeddings of a clip: mean {both.mean():.3f}, min {both.min():.3f}")
    for name, emb in (("Kaldi filter bank", kaldi), ("vc log-mel + bridge", bridged)):
        same, diff, right = ranked_right(emb, speakers)
        print(f"{name}: same speaker {same:.3f}, different {diff:.3f}, pairs ranked right {100 * right:.1f} %")


if __name__ == "__main__":
    main()
