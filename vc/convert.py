"""Inference: files in, converted speech out. Needs none of the training code.

    import vc
    converter = vc.load()                      # the installed default model, HiFi-GAN
    wav = converter.convert("a.wav", "b.wav")  # a's words in b's voice, 22,050 Hz float32
    ab, ba = converter.swap("a.wav", "b.wav")

Inputs may be paths or waveforms (1-D float32 at ``converter.sample_rate``); paths are checked
by vc.audio (bad input raises vc.audio.AudioError with a one-line message).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import MAX_SECONDS, load_audio, match_loudness, save_audio
from .checkpoint import load_model
from .features import MelConfig, mel_spectrogram
from .model import VoiceConverter
from .vocoder import get_vocoder

DEFAULT_MODEL = Path(__file__).parent / "pretrained" / "default.pt"


class NoModelError(RuntimeError):
    """No trained model is installed and none was given."""


def default_model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise NoModelError(f"no trained model is installed ({DEFAULT_MODEL} is missing): "
                           "pass --model CHECKPOINT.pt (train one with `vc train`)")
    return DEFAULT_MODEL


@dataclass
class Timings:
    """Seconds spent per stage of the last call."""
    stages: dict = field(default_factory=dict)

    def add(self, stage: str, seconds: float):
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds


class Converter:
    """A loaded model + vocoder. Thread-compatible for reads; one per process is enough."""

    def __init__(self, model: VoiceConverter, mel_cfg: MelConfig = MelConfig(), vocoder: str = "hifigan",
                 device: str = "cpu", max_seconds: float = MAX_SECONDS, meta: dict | None = None):
        self.model, self.mel_cfg, self.device = model.to(device).eval(), mel_cfg, torch.device(device)
        self.vocoder_name = vocoder
        self.vocoder = get_vocoder(vocoder, mel_cfg).to(self.device)
        self.max_seconds = max_seconds
        self.meta = meta or {}
        self.timings = Timings()

    @property
    def sample_rate(self) -> int:
        return self.mel_cfg.sample_rate

    # -- stages ----------------------------------------------------------------------------
    def load(self, audio) -> np.ndarray:
        """Path -> checked, trimmed, loudness-normalised waveform; arrays pass through."""
        if isinstance(audio, (str, Path)):
            t = time.perf_counter()
            wav = load_audio(audio, self.sample_rate, max_seconds=self.max_seconds)
            self.timings.add("load", time.perf_counter() - t)
            return wav
        return np.asarray(audio, dtype=np.float32)

    def mel(self, wav: np.ndarray) -> torch.Tensor:
        """(T,) -> (n_mels, frames) on the model's device."""
        t = time.perf_counter()
        out = mel_spectrogram(torch.from_numpy(wav), self.mel_cfg).to(self.device)
        self.timings.add("features", time.perf_counter() - t)
        return out

    @torch.inference_mode()
    def speaker(self, *targets) -> torch.Tensor:
        """The speaker vector (speaker_dim,) of one or several clips of one voice (their mean)."""
        vecs = [self.model.embed_speaker(self.mel(self.load(t)))[0] for t in targets]
        return torch.stack(vecs).mean(0)

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        """(n_mels, frames) -> (frames * hop,) float32."""
        t = time.perf_counter()
        wav = self.vocoder(mel[None])[0].float().cpu().numpy()
        self.timings.add("vocoder", time.perf_counter() - t)
        return wav

    # -- conversions -------------------------------------------------------------------------
    @torch.inference_mode()
    def convert_mel(self, source: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """(n_mels, T) content + (speaker_dim,) voice -> (n_mels, T)."""
        t = time.perf_counter()
        code = self.model.encode(source)
        out = self.model.decode(code.with_speaker(speaker[None]))[0]
        self.timings.add("model", time.perf_counter() - t)
        return out

    def convert(self, source, target, *, match_input_loudness: bool = True) -> np.ndarray:
        """``source``'s words in ``target``'s voice (``target`` may be a list of clips of one voice)."""
        self.timings = Timings()
        src = self.load(source)
        targets = target if isinstance(target, (list, tuple)) else [target]
        out = self.vocode(self.convert_mel(self.mel(src), self.speaker(*targets)))
        return match_loudness(out, src) if match_input_loudness else out

    def swap(self, a, b, *, match_input_loudness: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(a's words in b's voice, b's words in a's voice)."""
        self.timings = Timings()
        wa, wb = self.load(a), self.load(b)
        ma, mb = self.mel(wa), self.mel(wb)
        with torch.inference_mode():
            sa, sb = self.model.embed_speaker(ma)[0], self.model.embed_speaker(mb)[0]
        ab, ba = self.vocode(self.convert_mel(ma, sb)), self.vocode(self.convert_mel(mb, sa))
        if match_input_loudness:
            ab, ba = match_loudness(ab, wa), match_loudness(ba, wb)
        return ab, ba

    def convert_file(self, source, target, out, out_rate: int | None = None) -> Path:
        return save_audio(out, self.convert(source, target), self.sample_rate, out_rate=out_rate)


def load(model=None, vocoder: str = "hifigan", device: str = "cpu", **kw) -> Converter:
    """A ready converter: ``model`` is a checkpoint path (default: the installed default model)."""
    path = Path(model) if model else default_model_path()
    net, mel_cfg, state = load_model(path, device)
    return Converter(net, mel_cfg, vocoder=vocoder, device=device, meta=state.get("meta", {}), **kw)
