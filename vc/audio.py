"""Audio in and out: load anything, check it, make it mono 22,050 Hz float32, write it safely.

Every problem with an input file raises :class:`AudioError`, whose message names the file
and says what is wrong in one line. Front ends (CLI, web page, batch) print that line.

Shapes: a waveform is a 1-D float32 numpy array in [-1, 1] at ``sample_rate``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .files import OutputError, atomic_path, check_output_file

SUPPORTED = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
LOSSY = (".ogg", ".oga", ".opus", ".mp3")   # codecs that dull and smear the upper bands
SILENCE_DBFS = -60.0        # a file whose peak is below this is "all silence"
TRIM_DB = 40.0              # leading/trailing frames this far below the peak are trimmed
TARGET_RMS_DBFS = -23.0     # loudness normalisation target for speech frames
MIN_SECONDS = 0.5
MAX_SECONDS = 30 * 60.0     # the default longest input (configurable: max_seconds, --max-minutes)


def is_lossy(path) -> bool:
    """Is ``path`` coded by a lossy codec (Ogg Opus/Vorbis, MP3), by its suffix?"""
    return str(path).lower().endswith(LOSSY)


def _duration(seconds: float) -> str:
    """'42.0 s', or '95.3 min (5718 s)' past two minutes: a limit read at a glance."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _limit(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def too_long(seconds: float, max_seconds: float) -> str:
    """The one-line problem of an input over the limit."""
    return f"too long: {_duration(seconds)} (the limit is {_limit(max_seconds)})"


class AudioError(ValueError):
    """A bad input file. ``str(err)`` is one line: ``'<file>: <problem>'``."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def load_audio(path, sample_rate: int = 22050, *, min_seconds: float = MIN_SECONDS,
               max_seconds: float = MAX_SECONDS, trim: bool = True,
               normalize: bool = True) -> np.ndarray:
    """Read ``path`` (wav/flac/ogg/opus/mp3, any rate, any channels) -> mono float32 at ``sample_rate``."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if path.suffix.lower() not in SUPPORTED:
        raise AudioError(path, f"unsupported format '{path.suffix or '(no extension)'}' "
                               f"(use one of {', '.join(SUPPORTED)})")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
        if info.frames == 0 or info.samplerate <= 0:
            raise AudioError(path, "empty audio (no samples)")
        if max_seconds and info.frames / info.samplerate > max_seconds:
            raise AudioError(path, too_long(info.frames / info.samplerate, max_seconds))
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # libsndfile says "Format not recognised", "unknown format", ...
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(path, f"unreadable or corrupt audio ({detail})") from None
    return prepare(wav.mean(axis=1), sr, path, sample_rate=sample_rate, min_seconds=min_seconds,
                   max_seconds=max_seconds, trim=trim, normalize=normalize)


def prepare(wav: np.ndarray, sr: int, name="<array>", *, sample_rate: int = 22050,
            min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS,
            trim: bool = True, normalize: bool = True) -> np.ndarray:
    """Check and condition a waveform already in memory (mono or (T, channels))."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if wav.size == 0:
        raise AudioError(name, "empty audio (no samples)")
    if not np.isfinite(wav).all():
        raise AudioError(name, "contains NaN or infinite samples")
    if max_seconds and wav.size / sr > max_seconds:
        raise AudioError(name, too_long(wav.size / sr, max_seconds))
    if sr != sample_rate:
        wav = soxr.resample(wav, sr, sample_rate, quality="HQ").astype(np.float32)
    peak = float(np.abs(wav).max())
    if peak == 0.0 or 20 * np.log10(peak) < SILENCE_DBFS:
        raise AudioError(name, f"all silence (peak below {SILENCE_DBFS:g} dBFS)")
    if trim:
        wav = trim_silence(wav)
    if wav.size / sample_rate < min_seconds:
        raise AudioError(name, f"too short: {wav.size / sample_rate:.2f} s of sound "
                               f"(at least {min_seconds:g} s needed)")
    if normalize:
        wav = normalize_loudness(wav)
    return wav


def as_mono(wav, name="waveform") -> np.ndarray:
    """A waveform in memory (numpy or torch, (T,) or (T, channels)) -> mono float32 (T,), or
    AudioError naming ``name`` when it is not one."""
    try:
        wav = np.asarray(wav, dtype=np.float32)
    except (TypeError, ValueError, RuntimeError) as e:
        raise AudioError(name, f"not a waveform or an audio file path ({type(e).__name__})") from None
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if wav.ndim != 1:
        raise AudioError(name, f"expected a 1-D waveform (samples,) or (samples, channels), "
                               f"got shape {tuple(wav.shape)}")
    return wav


def check_waveform(wav, sample_rate: int = 22050, name="waveform", *, min_seconds: float = MIN_SECONDS,
                   max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """The checks of a file, for a waveform in memory (numpy or torch, (T,) or (T, channels)):
    empty, NaN, too long, silent, too short (after trimming silence) raise AudioError naming
    ``name``. -> the mono float32 waveform, otherwise unchanged (not trimmed, not normalised)."""
    wav = as_mono(wav, name)
    prepare(wav, sample_rate, name, sample_rate=sample_rate, min_seconds=min_seconds,
            max_seconds=max_seconds, trim=True, normalize=False)
    return wav


def trim_silence(wav: np.ndarray, top_db: float = TRIM_DB, frame: int = 1024,
                 hop: int = 256) -> np.ndarray:
    """Cut leading and trailing frames quieter than ``top_db`` below the loudest frame."""
    if wav.size < frame:
        return wav
    n = 1 + (wav.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(wav[idx] ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms / rms.max())
    loud = np.flatnonzero(db > -top_db)
    start, end = loud[0] * hop, min(wav.size, loud[-1] * hop + frame)
    return wav[start:end]


def normalize_loudness(wav: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """Scale so that the RMS of the louder half of the frames is ``target_dbfs``; never clip."""
    frames = wav[: wav.size // 256 * 256].reshape(-1, 256) if wav.size >= 256 else wav[None]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    active = rms[rms >= np.median(rms)]
    level = float(np.sqrt(np.mean(active ** 2))) + 1e-9
    out = wav * (10 ** (target_dbfs / 20) / level)
    peak = float(np.abs(out).max())
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def match_loudness(wav: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale ``wav`` to the loudness of ``reference`` (same measure as :func:`normalize_loudness`)."""
    ref = reference[: reference.size // 256 * 256].reshape(-1, 256)
    rms = np.sqrt(np.mean(ref ** 2, axis=1))
    active = rms[rms >= np.median(rms)]
    return normalize_loudness(wav, 20 * np.log10(float(np.sqrt(np.mean(active ** 2))) + 1e-9))


WRITABLE = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}     # what save_audio writes


def check_output(path, inputs=()) -> Path:
    """Before a conversion: refuse an output that save_audio could not write (OutputError, one
    line): a folder, an extension other than .wav/.flac/.ogg, an input, an unmakeable folder."""
    return check_output_file(path, set(WRITABLE), inputs)


def save_audio(path, wav: np.ndarray, sample_rate: int, *, out_rate: int | None = None) -> Path:
    """Write atomically (temporary file in the same folder, then rename): a reader never
    sees a half-written file. The format follows the extension (.wav, .flac, .ogg). The file gets
    the usual permissions (0666 minus the umask); a failure is an OutputError naming ``path``."""
    path = Path(path)
    fmt = WRITABLE.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(path, f"unsupported format '{path.suffix or '(no extension)'}' "
                                f"(use .wav, .flac or .ogg)")
    wav = np.asarray(wav, dtype=np.float32)
    if out_rate and out_rate != sample_rate:
        wav, sample_rate = soxr.resample(wav, sample_rate, out_rate).astype(np.float32), out_rate
    with atomic_path(path) as tmp:
        try:
            sf.write(tmp, np.clip(wav, -1, 1), sample_rate, format=fmt,
                     subtype="PCM_16" if fmt != "OGG" else None)
        except sf.SoundFileError as e:       # libsndfile: disk full, ...; names the temporary file
            raise OutputError(path, str(e).replace(str(tmp), "").strip(" :") or type(e).__name__) from None
    return path
