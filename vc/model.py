"""The disentangling autoencoder: content encoder, speaker encoder, AdaIN decoder, adversary.

Lineage: Chou et al. 2018 (an adversarial speaker classifier on the content code) and AdaIN-VC
(Chou, Yeh and Lee 2019: instance normalisation without affine parameters strips speaker
statistics from the content path; adaptive instance normalisation puts the speaker back).

Shapes at the boundaries (B batch, T mel frames, D = 2 ** len(strides) time downsampling):
    mel            (B, n_mels, T)          log-mel, as vc.features computes it
    Code.content   (B, content_dim, T'/D)  T' = T padded up to a multiple of D
    Code.speaker   (B, speaker_dim)        one vector per utterance, any T
    pitch          (B, pitch_channels, T)  the source's melody (vc.pitch), for a model that reads it
    Code.reference (B, n_mels, S)          real frames of the voice, for a model with frame_attention
    decode(code)   (B, n_mels, T)          cropped back to the input's length
Unbatched (n_mels, T) inputs are accepted and give unbatched outputs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import whisper
from .frame_attention import FrameAttention
from .quantize import VectorQuantizer


@dataclass
class ModelConfig:
    n_mels: int = 80
    channels: int = 192          # width of content encoder and decoder
    content_dim: int = 8         # the bottleneck: channels of the content code
    speaker_channels: int = 128  # width of the speaker encoder
    speaker_dim: int = 128       # size of the speaker vector
    kernel: int = 5
    strides: tuple = (2, 2)      # time downsampling of the content code (here 4x: ~21 codes/s)
    blocks_per_stage: int = 1    # residual blocks per time resolution
    post_blocks: int = 0         # AdaIN residual blocks at full frame rate whose output is added to
                                 # the decoder's mel (a speaker-aware post-net; 0 = none)
    classifier_channels: int = 256
    content_noise: float = 0.0   # std of Gaussian noise on the (unit-variance) content code in training
    speaker_noise: float = 0.0   # std of Gaussian noise on each coordinate of the speaker vector the
                                 # decoder gets in training (renders vectors off the encoder's outputs,
                                 # as speaker adaptation makes them; the returned vector stays clean).
                                 # 0.07 did not cut adaptation's quality loss (screening row s28_spknoise)
    pitch_channels: int = 0      # rows of vc.pitch features the decoder reads (2), or 0 for none; the
                                 # source's pitch must then come with every decode (Code.pitch)
    frame_attention: bool = False  # the decoder moves each output frame toward a soft mix of the
                                 # voice's real frames (Code.reference), by a gate it learns per band and
                                 # frame (vc.frame_attention); its gate starts at zero: a warm start first
                                 # computes what the model without it did
    frame_attention_band: int = 0  # the first mel band the gate may open (0: all)
    asr_content: float = 0.0     # > 0: the content encoder also reads Whisper tiny's encoder features of
                                 # its input (frozen, vc.whisper; not in the weights), times this gain,
                                 # through a projection that starts at zero (a warm start first computes
                                 # what the model without it did; Adam moves the projection's weights at
                                 # one pace, so a larger gain opens it faster)
    asr_layers: tuple = ()       # which of Whisper tiny's 4 encoder layers ``asr_content`` reads (stacked,
                                 # each at unit scale); empty: the final one (what v12 reads)
    vq_codes: int = 0            # > 0: the content code is vector-quantised with this many learned
                                 # codes (vc.quantize); 0: continuous
    vq_beta: float = 0.25        # weight of the commitment term in the quantiser's loss
    mel_mean: float = -5.0       # fixed input scaling of log-mels
    mel_std: float = 2.5

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"] = list(self.strides)
        d["asr_layers"] = list(self.asr_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["strides"] = tuple(d.get("strides", (2, 2)))
        d["asr_layers"] = tuple(d.get("asr_layers", ()))
        return cls(**d)

    def __post_init__(self):
        layers = self.asr_layers
        if any(not 1 <= i <= whisper.LAYERS for i in layers) or len(set(layers)) < len(layers):
            raise ValueError(f"asr_layers {list(layers)}: distinct layers of Whisper's encoder, "
                             f"1 to {whisper.LAYERS}")
        if self.vq_codes < 0:
            raise ValueError(f"vq_codes: a number of codes (0: no quantisation), not {self.vq_codes}")

    @property
    def downsample(self) -> int:
        return math.prod(self.strides)


@dataclass
class Code:
    """The split code of a batch of utterances: what is said, and who says it."""
    content: torch.Tensor   # (B, content_dim, frames')
    speaker: torch.Tensor   # (B, speaker_dim)
    frames: int             # length in mel frames of the utterance it came from
    pitch: torch.Tensor | None = None   # (B, pitch_channels, frames): for a model that reads it
    reference: torch.Tensor | None = None   # (B, n_mels, S) scaled log-mel frames of the voice: for a
                                            # model with frame_attention (None: decode without them)

    def with_speaker(self, speaker: torch.Tensor, reference: torch.Tensor | None = None) -> "Code":
        """This code in another voice: its ``speaker`` vector and, for a model with frame
        attention, its ``reference`` frames (as :meth:`VoiceConverter.reference` gives them)."""
        return replace(self, speaker=speaker, reference=reference)


def toward(own: torch.Tensor, other: torch.Tensor, strength) -> torch.Tensor:
    """own + strength * (other - own) of speaker vectors: 1 gives ``other``, more goes past it
    (away from ``own``). ``strength`` a number or a tensor that broadcasts, e.g. (B, 1)."""
    return own + strength * (other - own)


def conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2)


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance, per-channel normalisation over time, without affine parameters."""
    mean = x.mean(dim=2, keepdim=True)
    var = x.var(dim=2, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


class AdaIN(nn.Module):
    """Instance norm whose scale and shift come from the speaker vector."""

    def __init__(self, channels: int, speaker_dim: int):
        super().__init__()
        self.proj = nn.Linear(speaker_dim, 2 * channels)

    def forward(self, x: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(spk).unsqueeze(2).chunk(2, dim=1)
        return instance_norm(x) * (1 + gamma) + beta


class ResBlock(nn.Module):
    """Two convolutions with a skip; normalised by IN (encoder), AdaIN (decoder) or nothing."""

    def __init__(self, channels: int, kernel: int, norm: str, speaker_dim: int = 0):
        super().__init__()
        self.conv1, self.conv2 = conv(channels, channels, kernel), conv(channels, channels, kernel)
        self.norm = norm
        if norm == "adain":
            self.ada1, self.ada2 = AdaIN(channels, speaker_dim), AdaIN(channels, speaker_dim)

    def _norm(self, x, spk, i):
        if self.norm == "in":
            return instance_norm(x)
        if self.norm == "adain":
            return (self.ada1 if i == 1 else self.ada2)(x, spk)
        return x

    def forward(self, x: torch.Tensor, spk: torch.Tensor | None = None) -> torch.Tensor:
        h = F.leaky_relu(self._norm(self.conv1(x), spk, 1), 0.2)
        h = self._norm(self.conv2(h), spk, 2)
        return F.leaky_relu(x + h, 0.2)


class ContentEncoder(nn.Module):
    """(B, n_mels, T) scaled log-mel -> (B, content_dim, T / D), each channel zero-mean unit-variance
    over time. With ``asr_content`` it also reads Whisper's features of the same mel; with
    ``vq_codes`` each frame of that code is then replaced by its nearest code (``self.vq``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C = cfg.channels
        self.cfg = cfg
        self.inp = conv(cfg.n_mels, C, cfg.kernel)
        if cfg.asr_content:
            self.asr_in = nn.Conv1d(whisper.DIM * max(1, len(cfg.asr_layers)), C, 1)
            nn.init.zeros_(self.asr_in.weight)
            nn.init.zeros_(self.asr_in.bias)
        self.stages = nn.ModuleList()
        for s in cfg.strides:
            self.stages.append(nn.ModuleList(
                [ResBlock(C, cfg.kernel, "in") for _ in range(cfg.blocks_per_stage)]
                + [nn.Conv1d(C, C, 2 * s, stride=s, padding=s // 2)]))
        self.last = nn.ModuleList([ResBlock(C, cfg.kernel, "in") for _ in range(cfg.blocks_per_stage)])
        self.out = nn.Conv1d(C, cfg.content_dim, 1)
        self.vq = VectorQuantizer(cfg.vq_codes, cfg.content_dim, cfg.vq_beta) if cfg.vq_codes else None

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        z = self.continuous(mel)
        return z if self.vq is None else self.vq(z)[0]

    def continuous(self, mel: torch.Tensor) -> torch.Tensor:
        """The code before any quantisation."""
        x = self.inp(mel)
        if self.cfg.asr_content:
            feats = whisper.features(mel * self.cfg.mel_std + self.cfg.mel_mean, self.cfg.asr_layers)
            x = x + self.asr_in(self.cfg.asr_content * feats.to(x.dtype))
        x = F.leaky_relu(instance_norm(x), 0.2)
        for stage in self.stages:
            for block in stage[:-1]:
                x = block(x)
            x = F.leaky_relu(instance_norm(stage[-1](x)), 0.2)   # T -> T / stride
        for block in self.last:
            x = block(x)
        return instance_norm(self.out(x))


class SpeakerEncoder(nn.Module):
    """(B, n_mels, T) -> (B, speaker_dim): convolutions, then the mean over time (any T)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C = cfg.speaker_channels
        self.inp = conv(cfg.n_mels, C, cfg.kernel)
        self.blocks = nn.ModuleList([ResBlock(C, cfg.kernel, "none") for _ in range(2)])
        self.down = conv(C, C, 4, stride=2)
        self.head = nn.Sequential(nn.Linear(2 * C, C), nn.LeakyReLU(0.2), nn.Linear(C, cfg.speaker_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.inp(mel), 0.2)
        x = self.blocks[0](x)
        x = self.blocks[1](F.leaky_relu(self.down(x), 0.2))
        stats = torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1)   # (B, 2C)
        return self.head(stats)


class Decoder(nn.Module):
    """(B, content_dim, T / D) and (B, speaker_dim) -> (B, n_mels, T).

    With ``post_blocks`` > 0, more AdaIN blocks run at full frame rate on the last hidden
    features and add a correction to the mel. Its output layer starts at zero, so a decoder
    warm-started from one without them first computes exactly what that one did.

    With ``pitch_channels`` > 0 it also reads the source's pitch (B, pitch_channels, T): averaged
    to each time resolution, projected and added to the hidden features there (after the input
    layer and after each upsampling). These projections start at zero too."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C, K = cfg.channels, cfg.kernel
        self.inp = conv(cfg.content_dim, C, K)
        self.first = nn.ModuleList([ResBlock(C, K, "adain", cfg.speaker_dim)
                                    for _ in range(cfg.blocks_per_stage)])
        self.stages = nn.ModuleList()
        self.strides = cfg.strides
        for s in reversed(cfg.strides):
            self.stages.append(nn.ModuleList([conv(C, C, K)] + [ResBlock(C, K, "adain", cfg.speaker_dim)
                                                                for _ in range(cfg.blocks_per_stage)]))
        self.out = nn.Conv1d(C, cfg.n_mels, 1)
        self.pitch_in = nn.ModuleList([conv(cfg.pitch_channels, C, K) for _ in range(1 + len(cfg.strides))]
                                      if cfg.pitch_channels else [])
        for layer in self.pitch_in:
            nn.init.zeros_(layer.weight), nn.init.zeros_(layer.bias)
        self.attention = (FrameAttention(cfg.n_mels, C, cfg.frame_attention_band, cfg.mel_std)
                          if cfg.frame_attention else None)
        self.post = nn.ModuleList([ResBlock(C, K, "adain", cfg.speaker_dim) for _ in range(cfg.post_blocks)])
        if cfg.post_blocks:
            self.post_out = nn.Conv1d(C, cfg.n_mels, 1)
            nn.init.zeros_(self.post_out.weight), nn.init.zeros_(self.post_out.bias)

    def _pitch(self, i: int, pitch: torch.Tensor | None, frames: int) -> torch.Tensor | float:
        """What the pitch (B, pitch_channels, full rate) adds at the ``i``-th resolution, of
        ``frames`` frames: 0 for a decoder without pitch."""
        if not self.pitch_in:
            return 0.0
        rate = pitch.shape[2] // frames
        pooled = F.avg_pool1d(pitch, rate) if rate > 1 else pitch
        return self.pitch_in[i](pooled.to(self.pitch_in[i].weight.dtype))

    def forward(self, content: torch.Tensor, spk: torch.Tensor, pitch: torch.Tensor | None = None,
                reference: torch.Tensor | None = None) -> torch.Tensor:
        """``reference`` (B, n_mels, S), scaled: the voice's real frames, for a decoder with frame
        attention (without them it decodes as if its gate were shut)."""
        if self.pitch_in:                # the pitch of T frames, padded with unvoiced ones (or cut) to T'
            if pitch is None:
                raise ValueError("this model reads the source's pitch: give it the vc.pitch features "
                                 "of its audio (encode(mel, pitch))")
            full = content.shape[2] * math.prod(self.strides)
            pitch = F.pad(pitch, (0, full - pitch.shape[2])) if full > pitch.shape[2] else pitch[:, :, :full]
        x = F.leaky_relu(self.inp(content) + self._pitch(0, pitch, content.shape[2]), 0.2)
        for block in self.first:
            x = block(x, spk)
        for i, (s, stage) in enumerate(zip(reversed(self.strides), self.stages), 1):
            x = stage[0](F.interpolate(x, scale_factor=s, mode="nearest"))
            x = F.leaky_relu(x + self._pitch(i, pitch, x.shape[2]), 0.2)
            for block in stage[1:]:
                x = block(x, spk)
        mel = self.out(x)
        if self.post:
            for block in self.post:
                x = block(x, spk)
            mel = mel + self.post_out(x)
        if self.attention is not None and reference is not None:
            mel = self.attention(x, mel, reference)
        return mel


class SpeakerClassifier(nn.Module):
    """The adversary (training only): which training speaker does this content code come from?
    (B, content_dim, T / D) -> logits (B, n_speakers)."""

    def __init__(self, cfg: ModelConfig, n_speakers: int):
        super().__init__()
        C = cfg.classifier_channels
        self.net = nn.Sequential(conv(cfg.content_dim, C, cfg.kernel), nn.LeakyReLU(0.2),
                                 conv(C, C, cfg.kernel), nn.LeakyReLU(0.2),
                                 conv(C, C, cfg.kernel), nn.LeakyReLU(0.2))
        self.head = nn.Linear(2 * C, n_speakers)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        x = self.net(content)
        return self.head(torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1))


class VoiceConverter(nn.Module):
    """Encoder-decoder with a content/speaker split: everything inference needs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.content_encoder = ContentEncoder(cfg)
        self.speaker_encoder = SpeakerEncoder(cfg)
        self.decoder = Decoder(cfg)

    # -- helpers -------------------------------------------------------------------------
    def _batched(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() == 2:
            mel = mel[None]
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"expected a mel of shape (B, {self.cfg.n_mels}, T), got {tuple(mel.shape)}")
        return (mel - self.cfg.mel_mean) / self.cfg.mel_std

    def _pitch(self, pitch: torch.Tensor | None, frames: int) -> torch.Tensor | None:
        """(B, P, T) or (P, T) pitch of a ``frames``-frame mel -> batched, checked; None when
        none is given, or the model does not read pitch (it ignores any given)."""
        P = self.cfg.pitch_channels
        if not P or pitch is None:
            return None
        pitch = pitch[None] if pitch.dim() == 2 else pitch
        if pitch.dim() != 3 or pitch.shape[1] != P or pitch.shape[2] != frames:
            raise ValueError(f"expected a pitch of shape (B, {P}, {frames}), got {tuple(pitch.shape)}")
        return pitch

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        d = self.cfg.downsample
        target = max(2 * d, -(-x.shape[2] // d) * d)
        return F.pad(x, (0, target - x.shape[2]), mode="replicate") if target > x.shape[2] else x

    # -- the API ---------------------------------------------------------------------------
    def encode_content(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, content_dim, T'/D). ``mel`` already scaled and padded."""
        return self.content_encoder(mel)

    def encode(self, mel: torch.Tensor, pitch: torch.Tensor | None = None) -> Code:
        """(B, n_mels, T) or (n_mels, T) -> Code (always batched). ``pitch`` (B, P, T) or (P, T):
        the utterance's vc.pitch features, needed by a model with ``pitch_channels``."""
        x = self._batched(mel)
        return Code(content=self.content_encoder(self._pad(x)), speaker=self.speaker_encoder(x),
                    frames=x.shape[2], pitch=self._pitch(pitch, x.shape[2]))

    def embed_speaker(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) or (n_mels, T) -> (B, speaker_dim)."""
        return self.speaker_encoder(self._batched(mel))

    def reference(self, mel: torch.Tensor) -> torch.Tensor | None:
        """(B, n_mels, S) or (n_mels, S) real frames of a voice -> the ``Code.reference`` that a model
        with frame attention decodes with (scaled, batched); None for a model without it."""
        return self._batched(mel) if self.cfg.frame_attention else None

    def fit_speaker(self, mel: torch.Tensor, steps: int, lr: float = 0.002,
                    pitch: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_mels, T) or (n_mels, T) -> (B, speaker_dim): the speaker vector with which the
        decoder best rebuilds ``mel`` from its own content code (L1), found by ``steps`` Adam steps
        from the speaker encoder's estimate; the network's weights stay as they are. One-shot
        adaptation to a voice, the speaker-embedding fine-tuning of Arik et al. 2018 ("Neural voice
        cloning with a few samples"). Works inside ``torch.inference_mode()`` too.

        The default ``lr`` rebuilt other utterances of the same val speakers best at 50-100 steps
        (Adam moves every coordinate ~lr per step: 50 steps move a vector ~0.8, half the distance
        between two speakers' vectors; lr 0.01 moved it 2.1 and rebuilt them worse)."""
        with torch.inference_mode(False), torch.enable_grad():
            x = self._batched(mel.clone())
            content = self.content_encoder(self._pad(x)).detach()
            pitch = self._pitch(pitch, x.shape[2])
            spk = self.speaker_encoder(x).detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([spk], lr=lr)
            frozen = [p for p in self.parameters() if p.requires_grad]
            for p in frozen:
                p.requires_grad_(False)
            try:
                for _ in range(steps):
                    loss = (self.decoder(content, spk, pitch)[:, :, : x.shape[2]] - x).abs().mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finally:
                for p in frozen:
                    p.requires_grad_(True)
            return spk.detach().clone()

    def decode(self, code: Code) -> torch.Tensor:
        """Code -> (B, n_mels, code.frames)."""
        out = self.decoder(code.content, code.speaker, code.pitch, code.reference)[:, :, : code.frames]
        return out * self.cfg.mel_std + self.cfg.mel_mean

    def convert(self, source: torch.Tensor, target: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """The words of ``source`` in the voice of ``target``; output has source's length and rank.
        ``pitch``: the source's (for a model that reads it)."""
        out = self.decode(self.encode(source, pitch).with_speaker(self.embed_speaker(target), self.reference(target)))
        return out[0] if source.dim() == 2 else out

    def swap(self, a: torch.Tensor, b: torch.Tensor, pitch_a: torch.Tensor | None = None,
             pitch_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(a's words in b's voice, b's words in a's voice); each with its source's length."""
        ca, cb = self.encode(a, pitch_a), self.encode(b, pitch_b)
        ab = self.decode(ca.with_speaker(cb.speaker, self.reference(b)))
        ba = self.decode(cb.with_speaker(ca.speaker, self.reference(a)))
        return (ab[0], ba[0]) if a.dim() == 2 else (ab, ba)

    def forward(self, content_mel: torch.Tensor, speaker_mel: torch.Tensor, swap_shift: int = 0,
                swap_strength: float = 1.0, pitch: torch.Tensor | None = None) -> "TrainOutput":
        """Training pass: the content of ``content_mel`` (and its ``pitch``, for a model that
        reads it) with the speaker of ``speaker_mel``.
        With ``swap_shift`` > 0 also decodes each content code with the speaker vector of the item
        ``swap_shift`` places further in the batch (a conversion, for the cycle losses); with
        ``swap_strength`` s > 1, with own + u * (other - own), u uniform in [1, s] per item.
        A model with frame attention recalls the frames of ``speaker_mel`` (the swap: the other item's)."""
        x = self._pad(self._batched(content_mel))
        content, vq_loss = self.content_encoder.continuous(x), None
        if self.content_encoder.vq is not None:
            z = content
            content, vq_loss = self.content_encoder.vq(z)
            if self.training and torch.is_grad_enabled():   # a learning pass then moves the codes toward their frames
                self.content_encoder.vq.update(z)
        if self.training and self.cfg.content_noise > 0:
            content = content + self.cfg.content_noise * torch.randn_like(content)
        spk = self.speaker_encoder(self._batched(speaker_mel))
        ref = self.reference(speaker_mel)
        heard = spk                                   # what the decoder gets
        if self.training and self.cfg.speaker_noise > 0:
            heard = spk + self.cfg.speaker_noise * torch.randn_like(spk)
        T = content_mel.shape[-1]
        pitch = self._pitch(pitch, T)
        out = self.decoder(content, heard, pitch, ref)[:, :, :T] * self.cfg.mel_std + self.cfg.mel_mean
        swapped = None
        if swap_shift:
            other = heard.roll(swap_shift, 0)
            if swap_strength != 1.0:
                u = torch.empty(spk.shape[0], 1, device=spk.device).uniform_(1.0, swap_strength)
                other = toward(heard, other, u.to(spk.dtype))
            other_ref = None if ref is None else ref.roll(swap_shift, 0)
            swapped = self.decoder(content, other, pitch, other_ref)[:, :, :T] * self.cfg.mel_std + self.cfg.mel_mean
        return TrainOutput(out, content, spk, swapped, vq_loss)


class TrainOutput(NamedTuple):
    """What one training pass gives (B batch, T frames):
    recon (B, n_mels, T), content (B, content_dim, T'/D), speaker (B, speaker_dim),
    swapped (B, n_mels, T) or None: each content code decoded with another item's speaker,
    vq_loss () or None: the quantiser's commitment term, for a model with ``vq_codes``."""
    recon: torch.Tensor
    content: torch.Tensor
    speaker: torch.Tensor
    swapped: torch.Tensor | None
    vq_loss: torch.Tensor | None = None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
