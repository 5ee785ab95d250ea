"""Not speech? Say so: the autoencoder as an anomaly detector (issue 12).

The model rebuilds clean speech well and other sounds badly. The score of an input is

    score = max(recon / recon_speech, ratio / ratio_speech),   ratio = recon / trivial

* ``recon``: the model's reconstruction error, mean |log-mel error| over frames (encode the mel,
  decode it with its own speaker vector), the lecture's method;
* ``trivial``: the error of a trivial predictor of the same mel, its time-smoothed copy
  (a moving average over ``SMOOTH_FRAMES`` frames). Stationary noise, hum and tones are easy
  for the trivial predictor (small ``trivial``), speech is not; the ratio says how much better
  than "nothing changes" the model does, so that smooth non-speech is no longer easy. The ratio
  alone misses clicks (hard for the trivial predictor too), so both parts are kept, each in units
  of its median on calibration speech (``recon_speech``, ``ratio_speech``), and the larger counts.

The threshold is calibrated on train/val speech by scripts/calibrate_anomaly.py and stored in
vc/pretrained/anomaly.json, keyed by the sha1 of the model file; inference reads it without any
training code, and ignores it when it belongs to another model.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .files import file_sha1

ANOMALY_FILE = Path(__file__).parent / "pretrained" / "anomaly.json"
SMOOTH_FRAMES = 9          # the trivial predictor's moving average (~0.1 s at hop 256, 22,050 Hz)
EPS = 1e-3


def smoothed(mel: torch.Tensor, frames: int = SMOOTH_FRAMES) -> torch.Tensor:
    """(n_mels, T) -> its moving average over ``frames`` frames (edges replicated)."""
    x = F.pad(mel[None], (frames // 2, frames // 2), mode="replicate")
    return F.avg_pool1d(x, frames, stride=1)[0]


@torch.inference_mode()
def parts(model, mel: torch.Tensor) -> dict:
    """(n_mels, T) log-mel -> {"recon", "trivial", "score"}."""
    code = model.encode(mel)
    rebuilt = model.decode(code)[0]
    recon = (rebuilt - mel).abs().mean().item()
    trivial = (smoothed(mel) - mel).abs().mean().item()
    return {"recon": recon, "trivial": trivial, "ratio": recon / (trivial + EPS)}


def combine(p: dict, ref: dict) -> float:
    """The score of ``parts`` given the calibration medians ``ref`` = {"recon", "ratio"}."""
    return max(p["recon"] / ref["recon"], p["ratio"] / ref["ratio"])


def load_calibration(model_path, path=None) -> dict | None:
    """The calibration entry ({"threshold", "recon", "ratio", ...}) of the model file
    ``model_path``, or None (no file, or one calibrated on another model)."""
    try:
        entry = json.loads(Path(path or ANOMALY_FILE).read_text()).get(file_sha1(model_path))
        if entry is None:
            return None
        float(entry["threshold"]), float(entry["recon"]), float(entry["ratio"])
        return entry
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check(model, mel: torch.Tensor, name, calibration: dict) -> str | None:
    """The warning line for ``mel`` (of the input called ``name``), or None when it sounds like speech."""
    return warning(name, combine(parts(model, mel), calibration), float(calibration["threshold"]))


def warning(name, value: float, threshold: float) -> str | None:
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
        line = check(converter.model, converter.mel(converter.load(path)), path, calibration)
        if line:
            print(line, file=stream or sys.stderr)
            lines.append(line)
    return lines
