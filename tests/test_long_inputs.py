"""Inputs of any length: features and vocoder in pieces with overlap, the model on the whole input.

A chunked conversion must equal the whole one (log-mel within a small tolerance away from the
edges) and have no click at the borders of its pieces (no sample-to-sample jump larger than the
unchunked output has).
"""
import numpy as np
import pytest
import torch

from conftest import speechlike
from vc.convert import long_mel
from vc.features import MelConfig, mel_spectrogram
from vc.vocoder import vocode_chunked

CFG = MelConfig()


def speech20(example_clips) -> np.ndarray:
    """20 s of real speech at 22,050 Hz: the example clips one after the other, repeated."""
    from vc.audio import load_audio
    wav = np.concatenate([load_audio(p) for p in example_clips])
    return np.tile(wav, 1 + 20 * 22050 // wav.size)[: 20 * 22050]


@pytest.mark.parametrize("samples", [20 * 22050, 20 * 22050 + 100, 300 * 256 + 5])
def test_long_mel_equals_one_call(samples):
    wav = speechlike(samples / 22050 + 0.01, 22050)[:samples]
    whole = mel_spectrogram(torch.from_numpy(wav), CFG)
    pieces = long_mel(wav, CFG, chunk_frames=100)
    assert pieces.shape == whole.shape
    assert float((pieces - whole).abs().max()) < 1e-4


def test_chunks_cover_the_input_once_with_any_remainder():
    ident = lambda m: m.repeat_interleave(4, dim=-1)[:, :1]      # a "vocoder" with hop 4, no context
    for T in (10, 64, 65, 100, 129, 130, 131, 200):
        mel = torch.arange(T, dtype=torch.float32).expand(1, 80, T).clone()
        calls = []
        out = vocode_chunked(ident, mel, chunk_frames=64, context=8, fade=2,
                             progress=lambda d, n: calls.append((d, n)))
        assert out.shape == (1, 1, 4 * T)
        assert torch.allclose(out[0, 0], torch.arange(T).float().repeat_interleave(4), atol=1e-4), T
        assert calls[-1] == (T, T) and all(a < b for (a, _), (b, _) in zip(calls, calls[1:]))


def _max_jump_near(wav: np.ndarray, borders, hop: int = 256, frames: int = 4) -> float:
    return max(float(np.abs(np.diff(wav[max(0, b * hop - frames * hop): b * hop + frames * hop])).max())
               for b in borders)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_chunked_conversion_equals_the_whole(tiny_checkpoint, example_clips, precision):
    import vc
    src = speech20(example_clips)
    target = example_clips[1]
    whole = vc.load(tiny_checkpoint, vocoder="hifigan", precision=precision, chunk_frames=10 ** 6)
    chunked = vc.load(tiny_checkpoint, vocoder="hifigan", precision=precision, chunk_frames=200)
    a = whole.convert(src, target, match_input_loudness=False)
    b = chunked.convert(src, target, match_input_loudness=False)
    assert a.shape == b.shape
    ma, mb = mel_spectrogram(a, CFG), mel_spectrogram(b, CFG)
    inner = slice(10, ma.shape[-1] - 10)
    tol = 1e-3 if precision == "fp32" else 0.05
    assert float((ma - mb)[:, inner].abs().mean()) < tol
    borders = range(200, ma.shape[-1], 200)
    assert _max_jump_near(b, borders) <= float(np.abs(np.diff(a)).max()) + 1e-3      # no click


def test_griffinlim_pieces_have_no_click(tiny_checkpoint, example_clips):
    import vc
    src = speech20(example_clips)[: 8 * 22050]
    whole = vc.load(tiny_checkpoint, vocoder="griffinlim", chunk_frames=10 ** 6)
    chunked = vc.load(tiny_checkpoint, vocoder="griffinlim", chunk_frames=200)
    mel = whole.mel(src)
    a, b = whole.vocode(mel), chunked.vocode(mel)
    assert a.shape == b.shape
    assert _max_jump_near(b, range(200, mel.shape[-1], 200)) <= float(np.abs(np.diff(a)).max()) + 1e-3
    ma, mb = mel_spectrogram(a, CFG), mel_spectrogram(b, CFG)      # same spectrum (not same phase)
    assert float((ma - mb).abs().mean()) < 0.5
