"""Log-mel features, exactly as HiFi-GAN V1 (universal) analyses audio.

The vocoder was trained on these features, so the model must see the same ones:
22,050 Hz, n_fft 1024, window 1024 (Hann), hop 256, 80 mel bands from 0 to 8000 Hz
(librosa's Slaney filters), magnitude spectrum, natural log clamped at 1e-5.
The signal is reflect-padded by (n_fft - hop) / 2 on each side and analysed with
``center=False``, so T samples give T // hop frames.

Shapes: wav (B, T) or (T,) float32 in [-1, 1]  ->  mel (B, n_mels, frames) or (n_mels, frames).

:class:`MelBridge` turns these features into what a 16 kHz analysis (the networks that read vc's
mels: Whisper's encoder, the training's speaker judges) would have seen, differentiably.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import librosa
import numpy as np
import torch
import torch.nn as nn
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


BRIDGE_SR, BRIDGE_NFFT = 16000, 400
WINDOW_16K = 400          # every reader's analysis window at 16 kHz: 25 ms (zero-padded to its n_fft)
# the bridge reads log-mels up to this value: real speech, loudness-normalised by vc.audio, peaks
# below 1 (train clips: at most 0.78); a decoder that blows up early in training can emit values
# whose exp squared overflows float32, and one such frame made the judge's loss NaN
MAX_LOG_MEL = 5.0


class MelBridge(nn.Module):
    """vc log-mel (B, 80, T) at 86.1 frames/s -> ``n_mels``-band power mel (B, n_mels, T * 100 / 86.1)
    as a 16 kHz, 400-point, hop-160 analysis would see it (the common input of the
    speaker judges and Whisper): exp, pseudo-inverse of vc's filter bank, re-grid to 16 kHz bins with the window-size
    gain, square, linear interpolation to 100 frames/s, librosa's Slaney mel filter bank. Fixed
    linear algebra: gradients flow through."""

    def __init__(self, n_mels: int, mel_cfg: MelConfig = MelConfig(), n_fft: int = BRIDGE_NFFT,
                 basis: np.ndarray | None = None):
        """``basis`` (n_mels, n_fft // 2 + 1): the filter bank at 16 kHz; librosa's Slaney mel
        filter bank when None. The window is ``WINDOW_16K`` for every reader, zero-padded to ``n_fft``."""
        super().__init__()
        self.frame_rate = mel_cfg.sample_rate / mel_cfg.hop_length
        with torch.autocast("cpu", enabled=False):      # built in a bf16 region it was rounded to bf16
            inv = torch.linalg.pinv(_mel_basis(mel_cfg))                          # (513, 80)
        src_f = np.arange(mel_cfg.n_fft // 2 + 1) * mel_cfg.sample_rate / mel_cfg.n_fft
        dst_f = np.arange(n_fft // 2 + 1) * BRIDGE_SR / n_fft
        regrid = np.stack([np.interp(src_f, dst_f, np.eye(len(dst_f))[i]) for i in range(len(dst_f))])
        regrid /= np.maximum(regrid.sum(1, keepdims=True), 1e-9)                   # (n_fft/2+1, 513) averaging
        gain = WINDOW_16K / mel_cfg.win_length                                     # Hann window sums
        self.register_buffer("to_magnitude", inv, persistent=False)
        self.register_buffer("regrid", torch.from_numpy(regrid * gain).float(), persistent=False)
        if basis is None:
            basis = librosa.filters.mel(sr=BRIDGE_SR, n_fft=n_fft, n_mels=n_mels)      # (n_mels, n_fft/2+1)
        self.register_buffer("basis", torch.from_numpy(np.asarray(basis)).float(), persistent=False)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        mag = torch.clamp(self.to_magnitude @ torch.exp(logmel.clamp(max=MAX_LOG_MEL)), min=0.0)   # (B, 513, T)
        power = (self.regrid @ mag) ** 2                                           # (B, 201, T)
        frames = max(2, round(power.shape[2] * 100 / self.frame_rate))
        return self.basis @ F.interpolate(power, size=frames, mode="linear", align_corners=False)
