"""Inference: files in, converted speech out. Needs none of the training code.

    import vc
    converter = vc.load()                      # the installed default model, HiFi-GAN
    wav = converter.convert("a.wav", "b.wav")  # a's words in b's voice, 22,050 Hz float32
    ab, ba = converter.swap("a.wav", "b.wav")

Inputs may be paths or waveforms (1-D float32 at ``converter.sample_rate``); paths are checked
by vc.audio (bad input raises vc.audio.AudioError with a one-line message).

Conversion strength: the decoder gets source + strength * (target - source), the speaker vectors
of the source clip and of the target clip. 1 is the target's own vector; above 1 moves the voice
further from the source's, which makes up for the source voice that the content code still
carries. A model may set its own default (``meta["strength"]`` of the checkpoint; MODEL_CARD.md
says how it was chosen); ``vc.load(strength=...)`` and ``--strength`` override it.

Envelope matching (vc.match): with ``match`` w > 0, each output frame's spectral envelope moves by w
toward its nearest real speech frames of the target clip(s). Default: the model's
``meta["match"]``, else 0 (off); ``vc.load(match=...)`` and ``--match`` override it. High-band
matching (vc.match.match_high): with ``match_high`` w > 0, the bands above ~2.5 kHz of each sonorant
output frame move by w toward its nearest real target frames, fine structure included. Default:
``meta["match_high"]``, else 0; ``vc.load(match_high=...)`` and ``--match-high`` override it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import MAX_SECONDS, check_output, check_waveform, load_audio, match_loudness, save_audio
from .checkpoint import load_model
from .features import MelConfig, mel_spectrogram
from .match import check_weight, match_envelope, match_high, speech_frames
from .model import VoiceConverter, toward
from .pitch import pitch_features
from .vocoder import CHUNK_FRAMES, get_vocoder, resolve_precision, vocode_chunked

DEFAULT_MODEL = Path(__file__).parent / "pretrained" / "default.pt"
MAX_STRENGTH = 3.0
MAX_ADAPT_STEPS = 1000


class NoModelError(RuntimeError):
    """No trained model is installed and none was given."""


class DeviceError(ValueError):
    """A --device that does not exist on this machine; ``str(err)`` is one line."""


DEVICE_HELP = "cpu, cuda, cuda:N or mps"


def check_device(name) -> str:
    """Refuse, in one line (DeviceError), a device name torch does not know or this machine
    lacks: 'foo', 'cuda' without CUDA, 'cuda:3' with two GPUs, 'mps' off Apple silicon. -> name."""
    text = str(name).strip()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"unknown device '{name}' (use {DEVICE_HELP})") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no usable NVIDIA GPU"
            raise DeviceError(f"device '{name}': CUDA is not available on this machine ({build}, "
                              f"torch {torch.__version__}); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"device '{name}': this machine has {count} CUDA device"
                              f"{'s' * (count != 1)} (cuda:0 to cuda:{count - 1})")
        return text
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device '{name}': MPS (Apple silicon GPU) is not available on this machine; "
                              "use --device cpu")
        return text
    backend = getattr(torch, dev.type, None)         # xpu and other accelerators with is_available()
    if dev.type not in ("meta",) and callable(getattr(backend, "is_available", None)):
        if backend.is_available():
            return text
        raise DeviceError(f"device '{name}': {dev.type} is not available on this machine; use --device cpu")
    raise DeviceError(f"device '{name}' cannot run vc (use {DEVICE_HELP})")


def default_model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise NoModelError(f"no trained model is installed ({DEFAULT_MODEL} is missing): "
                           "pass --model CHECKPOINT.pt (train one with `vc train`)")
    return DEFAULT_MODEL


MEL_CHUNK_FRAMES = 4096    # log-mel frames computed at once for long inputs (47.6 s at 22,050 Hz)


def long_mel(wav, cfg: MelConfig = MelConfig(), chunk_frames: int = MEL_CHUNK_FRAMES,
             context: int = 4) -> torch.Tensor:
    """vc.features.mel_spectrogram of a 1-D waveform, computed ``chunk_frames`` frames at a time
    (bounded memory for long inputs). Each piece is analysed with ``context`` frames of real
    signal on both sides (a frame reaches 2.5 hops beyond its own), so every frame is computed
    from the same samples as in one call on the whole input: the same result up to rounding."""
    wav = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).float()
    hop = cfg.hop_length
    total = wav.shape[-1] // hop           # frames of the whole (reflect padding of (n_fft - hop) / 2)
    if total <= chunk_frames + 2 * context:
        return mel_spectrogram(wav, cfg)
    pieces = []
    for start in range(0, total, chunk_frames):
        end = min(total, start + chunk_frames)
        lo, hi = max(0, start - context), min(total, end + context)
        segment = wav[lo * hop: hi * hop if hi < total else None]   # the last piece: to the very end
        pieces.append(mel_spectrogram(segment, cfg)[:, start - lo: end - lo])
    return torch.cat(pieces, dim=-1)


@dataclass
class Timings:
    """Seconds spent per stage of the last call."""
    stages: dict = field(default_factory=dict)

    def add(self, stage: str, seconds: float):
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds


@dataclass
class Voice:
    """A target voice: its speaker vector (speaker_dim,) and, when matching (either kind) is on or
    the model has frame attention, the speech frames (n_mels, S) of its clips (else None)."""
    vector: torch.Tensor
    frames: torch.Tensor | None = None


class Converter:
    """A loaded model + vocoder. Thread-compatible for reads; one per process is enough.

    ``precision`` of HiFi-GAN: "fp32", "bf16" (under torch.autocast; on a CPU with AVX512-BF16 or
    AMX about twice as fast, the same quality) or "auto" (bf16 where the CPU supports it).
    Inputs of any length up to ``max_seconds``: the log-mel and the vocoder work on pieces with
    overlap (bounded memory, no seams); the model sees the whole input at once, so that its
    instance normalisation has the statistics of the whole utterance, as in one call."""

    def __init__(self, model: VoiceConverter, mel_cfg: MelConfig = MelConfig(), vocoder: str = "hifigan",
                 device: str = "cpu", max_seconds: float = MAX_SECONDS, meta: dict | None = None,
                 precision: str = "auto", chunk_frames: int = CHUNK_FRAMES, strength: float | None = None,
                 adapt_steps: int = 0, match: float | None = None, match_high: float | None = None):
        self.model, self.mel_cfg, self.device = model.to(device).eval(), mel_cfg, torch.device(device)
        self.vocoder_name = vocoder
        self.precision = resolve_precision(precision, self.device)
        self.vocoder = get_vocoder(vocoder, mel_cfg).to(self.device)
        self.max_seconds = max_seconds
        self.chunk_frames = chunk_frames
        self.meta = meta or {}
        self.strength = check_strength(self.meta.get("strength", 1.0) if strength is None else strength)
        self.adapt_steps = check_adapt_steps(adapt_steps)
        self.match = check_weight(self.meta.get("match", 0.0) if match is None else match)
        self.match_high = check_weight(self.meta.get("match_high", 0.0) if match_high is None else match_high,
                                       "match-high")
        self.timings = Timings()

    @property
    def sample_rate(self) -> int:
        return self.mel_cfg.sample_rate

    # -- stages ----------------------------------------------------------------------------
    def load(self, audio, name: str = "waveform") -> np.ndarray:
        """Path -> checked, trimmed, loudness-normalised waveform. A waveform (at
        ``sample_rate``) gets the same checks (AudioError naming ``name``) and is used as it is."""
        if isinstance(audio, (str, os.PathLike)):
            t = time.perf_counter()
            wav = load_audio(audio, self.sample_rate, max_seconds=self.max_seconds)
            self.timings.add("load", time.perf_counter() - t)
            return wav
        return check_waveform(audio, self.sample_rate, name, max_seconds=self.max_seconds)

    def mel(self, wav: np.ndarray) -> torch.Tensor:
        """(T,) -> (n_mels, frames) on the model's device."""
        t = time.perf_counter()
        out = long_mel(torch.from_numpy(wav), self.mel_cfg).to(self.device)
        self.timings.add("features", time.perf_counter() - t)
        return out

    def pitch(self, wav: np.ndarray) -> torch.Tensor | None:
        """(T,) -> (pitch_channels, frames) on the model's device, for a model that reads the
        source's pitch (vc.pitch); None for one that does not."""
        if not self.model.cfg.pitch_channels:
            return None
        t = time.perf_counter()
        out = torch.from_numpy(pitch_features(wav, self.mel_cfg)).to(self.device)
        self.timings.add("features", time.perf_counter() - t)
        return out

    @torch.inference_mode()
    def voice(self, mel: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """(n_mels, T) -> (speaker_dim,): the speaker encoder's vector of one clip; with
        ``adapt_steps`` > 0 refined until the decoder rebuilds the clip best with it
        (vc.model.VoiceConverter.fit_speaker: about 1 s per clip per 50 steps on one CPU core;
        a model that reads pitch needs the clip's ``pitch`` for that)."""
        if self.adapt_steps:
            return self.model.fit_speaker(mel, self.adapt_steps, pitch=pitch)[0]
        return self.model.embed_speaker(mel)[0]

    def bank(self, mel: torch.Tensor) -> torch.Tensor | None:
        """(n_mels, T) of a target clip -> its speech frames (n_mels, S) for matching (vc.match) and
        a model's frame attention; None when neither needs them."""
        return speech_frames(mel) if self.needs_frames else None

    @property
    def matching(self) -> bool:
        """Whether the output moves toward real target frames (envelope or high-band matching)."""
        return bool(self.match or self.match_high)

    @property
    def needs_frames(self) -> bool:
        """Whether a conversion needs the target's real frames (:meth:`bank`): for matching, or
        for a model with frame attention (vc.frame_attention.FrameAttention)."""
        return self.matching or self.model.cfg.frame_attention

    @torch.inference_mode()
    def target(self, *targets) -> Voice:
        """The voice of one or several clips of one speaker: the mean of their speaker vectors, and
        all their speech frames when matching is on."""
        if not targets:
            raise ValueError("no target clip given (the voice to convert to)")
        wavs = [self.load(t, "target waveform") for t in targets]
        mels = [self.mel(w) for w in wavs]
        vecs = [self.voice(m, self.pitch(w) if self.adapt_steps else None) for m, w in zip(mels, wavs)]
        frames = torch.cat([self.bank(m) for m in mels], 1) if self.needs_frames else None
        return Voice(torch.stack(vecs).mean(0), frames)

    def speaker(self, *targets) -> torch.Tensor:
        """The speaker vector (speaker_dim,) of one or several clips of one voice (their mean)."""
        return self.target(*targets).vector

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor, progress=None) -> np.ndarray:
        """(n_mels, frames) -> (frames * hop,) float32, ``self.chunk_frames`` frames at a time
        (``progress(done_frames, total_frames)`` after each piece)."""
        t = time.perf_counter()
        wav = vocode_chunked(self.vocode_piece, mel[None], self.chunk_frames, progress=progress)[0].cpu().numpy()
        self.timings.add("vocoder", time.perf_counter() - t)
        return wav

    @torch.inference_mode()
    def vocode_piece(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) -> (B, frames * hop) float32 in one call, at ``self.precision``."""
        bf16 = self.precision == "bf16" and self.vocoder.name == "hifigan"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.vocoder(mel).float()

    # -- conversions -------------------------------------------------------------------------
    @torch.inference_mode()
    def convert_mel(self, source: torch.Tensor, speaker: torch.Tensor, own: torch.Tensor | None = None,
                    pitch: torch.Tensor | None = None, frames: torch.Tensor | None = None) -> torch.Tensor:
        """(n_mels, T) content + (speaker_dim,) voice -> (n_mels, T). With ``strength`` s != 1 the
        decoder gets source + s * (speaker - source), source being the source's own vector
        (``own``, or found as :meth:`voice` finds the target's). ``pitch`` (pitch_channels, T):
        the source's (:meth:`pitch`), for a model that reads it. ``frames`` (n_mels, S): the
        target's speech frames (:meth:`bank`), for matching."""
        t = time.perf_counter()
        code = self.model.encode(source, pitch)
        if self.strength != 1.0:
            if own is None:
                own = self.voice(source, pitch) if self.adapt_steps else code.speaker[0]
            speaker = toward(own, speaker, self.strength)
        out = self.matched(self.decode(code, speaker, frames), frames)
        self.timings.add("model", time.perf_counter() - t)
        return out

    def decode(self, code, speaker: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """A content code (vc.model.Code of one utterance) in the voice of ``speaker`` (speaker_dim,)
        -> (n_mels, code.frames); a model with frame attention also recalls the target's speech
        ``frames`` (n_mels, S), when given."""
        reference = None if frames is None else self.model.reference(frames)
        return self.model.decode(code.with_speaker(speaker[None], reference))[0]

    def matched(self, mel: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
        """A decoded (n_mels, T) matched to ``frames`` (vc.match): its envelope, then its high bands,
        each when it is on."""
        if frames is None:
            return mel
        if self.match:
            mel = match_envelope(mel, frames, self.match)
        return match_high(mel, frames, self.match_high) if self.match_high else mel

    def convert(self, source, target, *, match_input_loudness: bool = True) -> np.ndarray:
        """``source``'s words in ``target``'s voice (``target`` may be a list of clips of one voice)."""
        self.timings = Timings()
        src = self.load(source, "source waveform")
        voice = self.target(*(target if isinstance(target, (list, tuple)) else [target]))
        out = self.vocode(self.convert_mel(self.mel(src), voice.vector, pitch=self.pitch(src), frames=voice.frames))
        return match_loudness(out, src) if match_input_loudness else out

    def swap(self, a, b, *, match_input_loudness: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(a's words in b's voice, b's words in a's voice)."""
        self.timings = Timings()
        wa, wb = self.load(a, "waveform a"), self.load(b, "waveform b")
        ma, mb, pa, pb = self.mel(wa), self.mel(wb), self.pitch(wa), self.pitch(wb)
        with torch.inference_mode():
            sa, sb = self.voice(ma, pa), self.voice(mb, pb)
        ab = self.vocode(self.convert_mel(ma, sb, own=sa, pitch=pa, frames=self.bank(mb)))
        ba = self.vocode(self.convert_mel(mb, sa, own=sb, pitch=pb, frames=self.bank(ma)))
        if match_input_loudness:
            ab, ba = match_loudness(ab, wa), match_loudness(ba, wb)
        return ab, ba

    def stream(self, chunks, target, **options):
        """Live conversion (vc.stream): ``chunks``, an iterable of 1-D float32 arrays at
        ``sample_rate`` of any size (e.g. 0.25 s from a microphone) -> one converted array per
        chunk as soon as it is ready, then one with the rest. ``target``'s speaker vector is
        computed once. Output sample i is the conversion of input sample i (not trimmed, not
        loudness-matched); it comes out 0.25 s + one chunk + compute time after it went in."""
        from .stream import stream
        return stream(self, chunks, target, **options)

    def convert_file(self, source, target, out, out_rate: int | None = None) -> Path:
        """Convert and write ``out`` (.wav, .flac, .ogg); an unwritable ``out`` is refused first."""
        inputs = [x for x in (source, *(target if isinstance(target, (list, tuple)) else [target]))
                  if isinstance(x, (str, os.PathLike))]
        check_output(out, inputs)
        return save_audio(out, self.convert(source, target), self.sample_rate, out_rate=out_rate)


def check_strength(strength) -> float:
    """The conversion strength, checked: a number from 0 (the source's own voice) to MAX_STRENGTH."""
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength {strength!r}: give a number from 0 to {MAX_STRENGTH:g}") from None
    if not 0.0 <= s <= MAX_STRENGTH:
        raise ValueError(f"strength {s:g}: give a number from 0 to {MAX_STRENGTH:g} "
                         "(1 = the target's own speaker vector)")
    return s


def check_adapt_steps(steps) -> int:
    """Steps of speaker-vector adaptation, checked: a whole number from 0 (none) to MAX_ADAPT_STEPS."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= MAX_ADAPT_STEPS:
        raise ValueError(f"adapt {steps!r}: give a whole number of steps from 0 (none) to {MAX_ADAPT_STEPS}")
    return int(steps)


def swap_names(a, b, ext: str = ".wav") -> tuple[str, str]:
    """Output names of a swap of the clips ``a`` and ``b``: (a's words in b's voice, b's words in
    a's voice), ``<a>_in_voice_of_<b>.wav`` and the reverse. Two clips with the same name
    (d1/utt.flac and d2/utt.flac, or one file twice) become A and B, so the names never collide
    (not even on a case-insensitive file system)."""
    sa, sb = Path(a).stem, Path(b).stem
    if sa.casefold() == sb.casefold():
        sa, sb = "A", "B"
    return f"{sa}_in_voice_of_{sb}{ext}", f"{sb}_in_voice_of_{sa}{ext}"


def load(model=None, vocoder: str = "hifigan", device: str = "cpu", precision: str = "auto", **kw) -> Converter:
    """A ready converter: ``model`` is a checkpoint path (default: the installed default model);
    ``precision`` of HiFi-GAN: "auto" (bf16 where the CPU supports it, else fp32), "fp32", "bf16";
    ``max_seconds``: the longest input accepted (default 30 minutes); ``strength``, ``match``,
    ``match_high``, ``adapt_steps``: see the module's docstring (default: the model's own)."""
    resolve_precision(precision, device)        # a wrong name is refused before any loading
    device = check_device(device)
    path = Path(model) if model else default_model_path()
    net, mel_cfg, state = load_model(path, device)
    return Converter(net, mel_cfg, vocoder=vocoder, device=device, meta=state.get("meta", {}),
                     precision=precision, **kw)
