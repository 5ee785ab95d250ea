"""A frozen, differentiable speaker judge for training: Resemblyzer's d-vector network reading
vc's own log-mels (training only; inference never needs it).

Resemblyzer (GE2E, trained on thousands of speakers; weights inside its PyPI wheel) reads a
40-band *power* mel at 16 kHz (25 ms windows, 10 ms hop). vc's features are 80-band log-magnitude
mels at 22,050 Hz (hop 256). The bridge, all fixed linear algebra, so gradients flow through it:

    log-mel (B, 80, T) --exp, pseudo-inverse filter bank--> magnitude (B, 513, T) at 22,050 Hz
        --re-grid to 16 kHz/400-point bins, window-size gain, square--> power (B, 201, T)
        --Resemblyzer's mel filter bank--> (B, 40, T) --loudness to a fixed mean--> --86 -> 100 frames/s-->
        LSTM --> d-vector (B, 256), unit norm

Because a model trained against one speaker network can learn to please it, every model trained
with this judge is also measured with a second verifier that training never touches
(vc.evaluate: ECAPA-TDNN).
"""
from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import MelConfig, _mel_basis

RES_SR, RES_NFFT, RES_HOP, RES_MELS = 16000, 400, 160, 40
# mean over frames of the summed 40-band power mel that Resemblyzer sees on speech normalised
# to -30 dBFS (its preprocessing); measured on 20 val utterances: 1.19
TARGET_LEVEL = 1.19
# the bridge reads log-mels up to this value: real speech, loudness-normalised by vc.audio, peaks
# below 1 (train clips: at most 0.78); a decoder that blows up early in training can emit values
# whose exp squared overflows float32, and one such frame made the judge's loss NaN
MAX_LOG_MEL = 5.0


class MelBridge(nn.Module):
    """vc log-mel (B, 80, T) at 86.1 frames/s -> ``n_mels``-band power mel (B, n_mels, T * 100 / 86.1)
    as a 16 kHz, 400-point, hop-160 analysis would see it (the common input of Resemblyzer and
    Whisper): exp, pseudo-inverse of vc's filter bank, re-grid to 16 kHz bins with the window-size
    gain, square, linear interpolation to 100 frames/s, librosa's Slaney mel filter bank. Fixed
    linear algebra: gradients flow through."""

    def __init__(self, n_mels: int, mel_cfg: MelConfig = MelConfig()):
        super().__init__()
        self.frame_rate = mel_cfg.sample_rate / mel_cfg.hop_length
        inv = torch.linalg.pinv(_mel_basis(mel_cfg))                              # (513, 80)
        src_f = np.arange(mel_cfg.n_fft // 2 + 1) * mel_cfg.sample_rate / mel_cfg.n_fft
        dst_f = np.arange(RES_NFFT // 2 + 1) * RES_SR / RES_NFFT
        regrid = np.stack([np.interp(src_f, dst_f, np.eye(len(dst_f))[i]) for i in range(len(dst_f))])
        regrid /= np.maximum(regrid.sum(1, keepdims=True), 1e-9)                   # (201, 513) averaging
        gain = RES_NFFT / mel_cfg.win_length                                       # Hann window sums
        self.register_buffer("to_magnitude", inv, persistent=False)
        self.register_buffer("regrid", torch.from_numpy(regrid * gain).float(), persistent=False)
        basis = librosa.filters.mel(sr=RES_SR, n_fft=RES_NFFT, n_mels=n_mels)        # (n_mels, 201)
        self.register_buffer("basis", torch.from_numpy(basis).float(), persistent=False)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        mag = torch.clamp(self.to_magnitude @ torch.exp(logmel.clamp(max=MAX_LOG_MEL)), min=0.0)   # (B, 513, T)
        power = (self.regrid @ mag) ** 2                                           # (B, 201, T)
        frames = max(2, round(power.shape[2] * 100 / self.frame_rate))
        return self.basis @ F.interpolate(power, size=frames, mode="linear", align_corners=False)


class ResemblyzerJudge(nn.Module):
    def __init__(self, mel_cfg: MelConfig = MelConfig()):
        super().__init__()
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as e:
            raise RuntimeError(f"the Resemblyzer speaker loss needs resemblyzer ({e}): "
                               "pip install --no-deps resemblyzer webrtcvad-wheels") from None
        self.encoder = VoiceEncoder("cpu", verbose=False).requires_grad_(False)
        self.bridge = MelBridge(RES_MELS, mel_cfg)

    def mels(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) vc log-mel -> (B, T * 100 / 86.1, 40): what Resemblyzer's LSTM reads."""
        mel = self.bridge(logmel)                                                  # (B, 40, T')
        level = mel.sum(1).mean(1).clamp(min=1e-8).view(-1, 1, 1)
        return (mel * (TARGET_LEVEL / level)).transpose(1, 2)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) -> (B, 256) unit-norm d-vectors (one window over each whole segment)."""
        return self.encoder(self.mels(logmel))
