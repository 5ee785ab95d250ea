"""What the web page's two tabs share: the swap page (vc/demo.py) and the Live tab (vc/demo_live.py).

The models offered and their converters (loaded once per process, shared by all visitors), the
torch threads per conversion, the one-line Refusal and the boxes that show it, and the check that
a clip sounds like clean speech. Layers point one way: page <- demo_live <- demo.
"""
from __future__ import annotations

import html
import os
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # no phoning home, works offline
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402

from .audio import MAX_SECONDS  # noqa: E402
from .convert import DEFAULT_MODEL, Converter, load  # noqa: E402

PRETRAINED = DEFAULT_MODEL.parent
EXAMPLES = Path(__file__).parent / "examples"
VOCODER_CHOICES = [("HiFi-GAN (natural)", "hifigan"), ("Griffin-Lim (fast, robotic)", "griffinlim")]
NO_MODEL = ("no trained model is installed (vc/pretrained/default.pt is missing), so conversion is off: "
            "start the page with --model CHECKPOINT.pt (train one with `vc train`)")

_CONVERTERS: dict[tuple[str, str, float], Converter] = {}
_LOCK = threading.Lock()
_CALIBRATIONS: dict[str, dict | None] = {}


def model_choices(extra=()) -> dict[str, Path]:
    """{label: checkpoint}: the --model files first, then vc/pretrained/*.pt (default.pt first)."""
    paths = [Path(p).resolve() for p in extra]
    installed = sorted(PRETRAINED.glob("*.pt"), key=lambda p: (p.name != "default.pt", p.name))
    paths += [p.resolve() for p in installed if p.resolve() not in paths]
    names = [p.name for p in paths]
    return {(p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}"): p for p in paths}


def get_converter(path, vocoder: str, max_seconds: float = MAX_SECONDS) -> Converter:
    """One Converter per (checkpoint, vocoder, limit) and process; loaded on first use."""
    key = (str(path), vocoder, max_seconds)
    with _LOCK:
        if key not in _CONVERTERS:
            conv = load(path, vocoder=vocoder, max_seconds=max_seconds)
            conv.mel(np.zeros(conv.sample_rate, np.float32))    # warm up (mel filters: ~2 s once)
            _CONVERTERS[key] = conv
        return _CONVERTERS[key]


def set_threads(concurrency: int) -> int:
    """Torch threads per conversion = cores / concurrent conversions. More threads than cores
    makes OpenMP threads wait on each other: a swap then takes tens of times longer."""
    import torch
    threads = max(1, (os.cpu_count() or 1) // max(1, concurrency))
    torch.set_num_threads(threads)
    return threads


class Refusal(Exception):
    """Bad input or a failed conversion: one line for the visitor; ``which`` is the clip it is
    about ("A", "B") or None."""

    def __init__(self, message: str, which: str | None = None):
        super().__init__(message)
        self.which = which


def pick_model(models: dict[str, Path], model: str | None) -> str:
    """The label of the model chosen on the page (None: the first offered), or a Refusal."""
    if not models:
        raise Refusal(NO_MODEL)
    model = model or next(iter(models))
    if model not in models:
        raise Refusal(f"unknown model '{model}' (choose from {', '.join(models)})")
    return model


def load_converter(models: dict[str, Path], model: str, vocoder: str, max_seconds: float) -> Converter:
    """The shared Converter of the label ``model`` (from pick_model) with ``vocoder``; a model
    or vocoder that cannot be loaded is a Refusal."""
    try:
        return get_converter(models[model], vocoder, max_seconds)
    except Exception as e:  # CheckpointError, VocoderError: one line
        raise Refusal(f"cannot load {model} with {vocoder}: {e}") from None


def wav_bytes(wav: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit mono wav file in memory: what a streaming gr.Audio output plays (a numpy output
    would be scaled to its own peak, chunk by chunk)."""
    import io

    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def messages(refusal: Refusal | None):
    """The three message boxes of the page (next to clip A, next to clip B, under the button)."""
    import gradio as gr
    boxes = [gr.HTML(value="", visible=False) for _ in range(3)]
    if refusal is not None:
        slot = {"A": 0, "B": 1}.get(refusal.which, 2)
        boxes[slot] = gr.HTML(value=f'<div class="vc-error" role="alert" style="color: #b91c1c; '
                                    f'font-weight: 600">⚠️ {html.escape(str(refusal))}</div>', visible=True)
    return boxes


def not_speech(conv: Converter, model_path, mel, name: str, path=None, pitch=None) -> str | None:
    """vc.anomaly's one line for a clip whose log-mel ``mel`` (n_mels, frames) does not sound
    like clean speech to the model at ``model_path``, or whose file ``path`` sounds clipped, else
    None (no model check when that model has no calibrated threshold). The conversion goes on
    either way. ``pitch``: the clip's vc.pitch features, for a model that reads them."""
    import torch

    from . import anomaly
    native = anomaly.native_samples(path) if path else None
    clipped = anomaly.clipping_warning(name, native) if native is not None else None
    if clipped:
        return clipped
    key = str(model_path)
    if key not in _CALIBRATIONS:
        _CALIBRATIONS[key] = anomaly.load_calibration(model_path)
    if _CALIBRATIONS[key] is None:
        return None
    return anomaly.check(conv.model, torch.as_tensor(mel), name, _CALIBRATIONS[key],
                         None if pitch is None else torch.as_tensor(pitch))


def warning_box(line: str | None):
    """The amber box next to a clip: visible with ``line``, hidden without."""
    import gradio as gr
    if not line:
        return gr.HTML(value="", visible=False)
    return gr.HTML(value=f'<div class="vc-warning" role="status" style="color: #92400e; background: #fef3c7; '
                         f'padding: 4px 8px; border-radius: 4px">⚠️ {html.escape(line)}</div>', visible=True)
