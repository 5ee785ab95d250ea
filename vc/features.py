"""Log-mel features, exactly as HiFi-GAN V1 (universal) analyses audio.

The vocoder was trained on these features, so the model must see the same ones:
22,050 Hz, n_fft 1024, window 1024 (Hann), hop 256, 80 mel bands from 0 to 8000 Hz
(librosa's Slaney filters), magnitude spectrum, natural log clamped at 1e-5.
The signal is reflect-padded by (n_fft - hop) / 2 on each side and analysed with
``center=False``, so T samples give T // hop frames.

Shapes: wav (B, T) or (T,) float32 in [-1, 1]  ->  mel (B, n_mels, frames) or (n_mels, frames).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import librosa
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelConfig":
        return cls(**d)

    def frames_to_seconds(self, frames: int) -> float:
        return frames * self.hop_length / self.sample_rate


# The cached constants are made outside inference mode even when first asked for inside it, so that
# a differentiable use later (a vocoder's mel loss) may still save them for backward.
@lru_cache(maxsize=8)
def _mel_basis(cfg: MelConfig) -> torch.Tensor:
    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                                fmin=cfg.f_min, fmax=cfg.f_max)
    with torch.inference_mode(False):
        return torch.from_numpy(basis).float()  # (n_mels, n_fft // 2 + 1)


@lru_cache(maxsize=8)
def _window(win_length: int) -> torch.Tensor:
    with torch.inference_mode(False):
        return torch.hann_window(win_length)


def mel_spectrogram(wav: torch.Tensor | np.ndarray, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Log-mel spectrogram. (T,) -> (n_mels, T // hop); (B, T) -> (B, n_mels, T // hop)."""
    wav = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).float()
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav[None]
    pad = (cfg.n_fft - cfg.hop_length) // 2
    wav = F.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(wav, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=_window(cfg.win_length).to(wav.device), center=False,
                      return_complex=True)
    mag = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)          # (B, n_fft//2+1, frames)
    mel = torch.matmul(_mel_basis(cfg).to(wav.device), mag)            # (B, n_mels, frames)
    mel = torch.log(torch.clamp(mel, min=cfg.log_floor))
    return mel[0] if squeeze else mel


def mel_to_linear(mel: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Approximate linear magnitude from log-mel (pseudo-inverse of the filter bank), for Griffin-Lim.

    (B, n_mels, frames) -> (B, n_fft // 2 + 1, frames)
    """
    inv = torch.linalg.pinv(_mel_basis(cfg)).to(mel.device)            # (freqs, n_mels)
    return torch.clamp(torch.matmul(inv, torch.exp(mel)), min=0.0)
