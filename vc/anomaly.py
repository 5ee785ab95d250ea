"""Not speech? Say so: the autoencoder as an anomaly detector (issue 12).

The model rebuilds clean speech well and other sounds badly, and places real voices where it has
seen voices. Two parts of an input, from one pass of the model:

* ``ratio = recon / trivial``: ``recon`` is the model's reconstruction error, mean |log-mel
  error| over frames (encode the mel, decode it with its own speaker vector), the lecture's
  method; ``trivial`` is the error of a trivial predictor of the same mel, its time-smoothed
  copy (a moving average over ``SMOOTH_FRAMES`` frames). Stationary noise, hum and tones are
  easy for the trivial predictor, speech is not, so the ratio says how much better than "nothing
  changes" the model does, and smooth non-speech is no longer easy for it;
* ``speaker``: how far the input's speaker vector lies from those of real speech, the mean
  squared z-score of its dimensions against the calibration speech's means and spreads. Tones,
  chords, chirps, clicks and hum give vectors no voice has.

Each part is divided by its own threshold (a high percentile of calibration speech, the same for
both, chosen so that 1 % of calibration speech is flagged) and the larger counts: the input is
flagged when ``score = max(ratio / t_ratio, speaker / t_speaker) > 1``. The reconstruction
error alone flags whole recordings of unseen real speakers (scripts/calibrate_anomaly.py
prints every part alone and each combination).

The reconstruction misses heavy clipping (a clipped voice is still a voice to the model), so a
second, signal-level check looks at the file's own samples at their native rate (resampling
smears flat tops): ``clipped_share``, the share of samples within 1 % of the peak magnitude.
Clean speech has under 1e-4 of them (train/val p99: 8e-5); over ``CLIP_SHARE`` warns.

The calibration (thresholds, speaker statistics) is made on train/val speech by
scripts/calibrate_anomaly.py and stored in vc/pretrained/anomaly.json, keyed by the sha1 of the
model file; inference reads it without any training code, and ignores it when it belongs to
another model or is of an older format.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from .files import file_sha1

ANOMALY_FILE = Path(__file__).parent / "pretrained" / "anomaly.json"
SMOOTH_FRAMES = 9          # the trivial predictor's moving average (~0.1 s at hop 256, 22,050 Hz)
EPS = 1e-3
CLIP_LEVEL = 0.99          # a sample within 1 % of the peak magnitude is "at the peak"
CLIP_SHARE = 1e-3          # more than 0.1 % of the samples at the peak: clipped (speech: < 0.01 %)


def smoothed(mel: torch.Tensor, frames: int = SMOOTH_FRAMES) -> torch.Tensor:
    """(n_mels, T) -> its moving average over ``frames`` frames (edges replicated)."""
    x = F.pad(mel[None], (frames // 2, frames // 2), mode="replicate")
    return F.avg_pool1d(x, frames, stride=1)[0]


@torch.inference_mode()
def parts(model, mel: torch.Tensor, speaker_stats: dict | None = None, pitch: torch.Tensor | None = None) -> dict:
    """(n_mels, T) log-mel -> {"recon", "trivial", "ratio", "speaker_vector"} and, given the
    calibration's ``speaker_stats`` = {"mean", "std"} (lists of speaker_dim numbers), "speaker".
    ``pitch``: the clip's vc.pitch features, for a model that reads them."""
    code = model.encode(mel, pitch)
    rebuilt = model.decode(code)[0]
    recon = (rebuilt - mel).abs().mean().item()
    trivial = (smoothed(mel) - mel).abs().mean().item()
    vector = code.speaker[0].float()
    out = {"recon": recon, "trivial": trivial, "ratio": recon / (trivial + EPS), "speaker_vector": vector}
    if speaker_stats is not None:
        out["speaker"] = speaker_distance(vector, speaker_stats)
    return out


def speaker_distance(vector: torch.Tensor, stats: dict) -> float:
    """Mean squared z-score of a (speaker_dim,) vector against {"mean", "std"} of real speech."""
    mean, std = (torch.as_tensor(stats[k], dtype=torch.float32) for k in ("mean", "std"))
    return (((vector - mean) / std) ** 2).mean().item()


def combine(p: dict, thresholds: dict) -> float:
    """The score of ``parts``: the largest part in units of its threshold (> 1: flagged)."""
    return max(p[k] / t for k, t in thresholds.items())


def clipped_share(wav) -> float:
    """The share of the samples of ``wav`` (1-D, at its native rate) at its peak magnitude."""
    a = np.abs(np.asarray(wav, dtype=np.float32))
    peak = float(a.max()) if a.size else 0.0
    return float((a >= CLIP_LEVEL * peak).mean()) if peak > 0 else 0.0


def clipping_warning(name, wav) -> str | None:
    """The one line for a clipped input (``wav`` at its native rate), else None."""
    share = clipped_share(wav)
    if share <= CLIP_SHARE:
        return None
    return (f"{name} sounds clipped ({share:.1%} of its samples at the peak level, clean speech has "
            f"under {CLIP_SHARE:.1%}): the conversion may fail")


def native_samples(path) -> np.ndarray | None:
    """The file's samples as stored (mono, native rate), or None when they cannot be read."""
    try:
        wav, _ = sf.read(str(path), dtype="float32", always_2d=True)
        return wav.mean(axis=1)
    except Exception:   # the conversion itself reports unreadable files
        return None


def load_calibration(model_path, path=None) -> dict | None:
    """The calibration entry ({"thresholds": {part: value}, "speaker_stats": {"mean", "std"}, ...})
    of the model file ``model_path``, or None (no file, another model's, or an older format)."""
    try:
        entry = json.loads(Path(path or ANOMALY_FILE).read_text()).get(file_sha1(model_path))
        if entry is None:
            return None
        thresholds = {k: float(v) for k, v in entry["thresholds"].items()}
        stats = {k: [float(x) for x in entry["speaker_stats"][k]] for k in ("mean", "std")}
        if not thresholds or not all(t > 0 for t in thresholds.values()) or len(stats["mean"]) != len(stats["std"]):
            return None
        return {**entry, "thresholds": thresholds, "speaker_stats": stats}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def score(model, mel: torch.Tensor, calibration: dict, pitch: torch.Tensor | None = None) -> float:
    return combine(parts(model, mel, calibration["speaker_stats"], pitch), calibration["thresholds"])


def check(model, mel: torch.Tensor, name, calibration: dict, pitch: torch.Tensor | None = None) -> str | None:
    """The warning line for ``mel`` (of the input called ``name``; ``pitch``: its vc.pitch
    features, for a model that reads them), or None when it sounds like speech."""
    return warning(name, score(model, mel, calibration, pitch))


def warning(name, value: float, threshold: float = 1.0) -> str | None:
    """The one line for a flagged input, else None."""
    if value <= threshold:
        return None
    return (f"{name} does not sound like clean speech (score {value:.2f}, speech is below "
            f"{threshold:.2f}): the conversion may fail")


def warn_inputs(converter, model_path, inputs, stream=None) -> list[str]:
    """Print (to ``stream``, default stderr) one line per input of ``inputs`` (paths) that does not
    sound like clean speech to the model at ``model_path``; nothing when no calibration of that
    model file is installed. -> the lines printed."""
    import sys
    calibration = load_calibration(model_path)
    if calibration is None:
        return []
    lines = []
    for path in dict.fromkeys(str(p) for p in inputs):
        native = native_samples(path)
        line = clipping_warning(path, native) if native is not None else None
        if not line:
            wav = converter.load(path)
            line = check(converter.model, converter.mel(wav), path, calibration, converter.pitch(wav))
        if line:
            print(line, file=stream or sys.stderr)
            lines.append(line)
    return lines
