"""vc.checkpoint: one file, bit-identical round trip, clear refusals."""
import pytest
import torch

from vc.checkpoint import (CheckpointError, average_models, export_checkpoint, load_model, read_checkpoint,
                           save_checkpoint)
from vc.features import MelConfig
from vc.model import ModelConfig, VoiceConverter
from conftest import TINY, tiny_model


def test_round_trip_is_bit_identical(tmp_path):
    model = tiny_model(seed=3)
    save_checkpoint(tmp_path / "m.pt", model, MelConfig(), meta={"step": 5})
    loaded, mel_cfg, state = load_model(tmp_path / "m.pt")
    assert mel_cfg == MelConfig() and state["meta"]["step"] == 5
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.randn(80, 100)
    with torch.no_grad():
        assert torch.equal(model.convert(x, x), loaded.convert(x, x))


def test_refusals(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    save_checkpoint(tmp_path / "good.pt", tiny_model(), MelConfig())
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    save_checkpoint(tmp_path / "mel.pt", tiny_model(), MelConfig(hop_length=200))
    cases = {"missing.pt": "not found", "text.pt": "checkpoint", "other.pt": "not a vc checkpoint",
             "truncated.pt": "truncated", "mel.pt": "other features"}
    for name, words in cases.items():
        with pytest.raises(CheckpointError) as e:
            read_checkpoint(tmp_path / name)
        assert name in str(e.value) and words in str(e.value) and "\n" not in str(e.value)


def test_export_drops_training_state(tmp_path):
    save_checkpoint(tmp_path / "run.pt", tiny_model(), MelConfig(),
                    train={"step": 7, "optimizer": {"big": torch.zeros(1000)}})
    export_checkpoint(tmp_path / "run.pt", tmp_path / "small.pt")
    state = read_checkpoint(tmp_path / "small.pt")
    assert "train" not in state and state["meta"]["step"] == 7


def test_average_of_models_is_their_mean_and_exports(tmp_path):
    a, b = tiny_model(seed=1), tiny_model(seed=2)
    save_checkpoint(tmp_path / "a.pt", a, MelConfig(), meta={"wall_seconds": 10.0, "step": 3})
    save_checkpoint(tmp_path / "b.pt", b, MelConfig(), train={"step": 5}, meta={"wall_seconds": 20.0})
    soup, _, _ = average_models([tmp_path / "a.pt", tmp_path / "b.pt"])
    for name, value in soup.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (a.state_dict()[name] + b.state_dict()[name]) / 2, atol=1e-6), name
    export_checkpoint([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "soup.pt", meta={"strength": 1.25})
    state = read_checkpoint(tmp_path / "soup.pt")
    assert "train" not in state and state["meta"]["strength"] == 1.25
    assert state["meta"]["steps"] == [3, 5] and state["meta"]["wall_seconds"] == 30.0
    model, _, _ = load_model(tmp_path / "soup.pt")
    assert all(torch.equal(v, soup.state_dict()[k]) for k, v in model.state_dict().items())


def test_average_refuses_another_architecture(tmp_path):
    save_checkpoint(tmp_path / "a.pt", tiny_model(), MelConfig())
    other = VoiceConverter(ModelConfig(**{**TINY, "content_dim": TINY["content_dim"] * 2}))
    save_checkpoint(tmp_path / "wide.pt", other, MelConfig())
    with pytest.raises(CheckpointError) as e:
        average_models([tmp_path / "a.pt", tmp_path / "wide.pt"])
    assert "wide.pt" in str(e.value) and "architecture" in str(e.value) and "\n" not in str(e.value)


def test_average_with_a_frame_attention_model_keeps_its_gate_whole(tmp_path):
    """A model without frame attention averages with one that has it (a fine-tune that added it):
    the shared weights are the mean, the attention's weights the one model's (not halved)."""
    plain = tiny_model(seed=1)
    torch.manual_seed(2)
    recalling = VoiceConverter(ModelConfig(**TINY, frame_attention=True, frame_attention_band=40))
    torch.nn.init.normal_(recalling.decoder.attention.gate.weight)
    save_checkpoint(tmp_path / "plain.pt", plain, MelConfig())
    save_checkpoint(tmp_path / "recalling.pt", recalling, MelConfig())
    for order in (["plain.pt", "recalling.pt"], ["recalling.pt", "plain.pt"]):
        soup, _, _ = average_models([tmp_path / n for n in order])
        assert soup.cfg.frame_attention and soup.cfg.frame_attention_band == 40
        for name, value in soup.state_dict().items():
            if name.startswith("decoder.attention."):
                assert torch.equal(value, recalling.state_dict()[name]), name
            else:
                assert torch.allclose(value, (plain.state_dict()[name] + recalling.state_dict()[name]) / 2,
                                      atol=1e-6), name
    other = VoiceConverter(ModelConfig(**TINY, frame_attention=True))         # another band: refused
    save_checkpoint(tmp_path / "other.pt", other, MelConfig())
    with pytest.raises(CheckpointError, match="architecture"):
        average_models([tmp_path / "recalling.pt", tmp_path / "other.pt"])


def test_average_with_an_asr_content_model_keeps_its_projection_whole(tmp_path):
    """A fine-tune that added Whisper's content input averages with its start: the shared weights
    are the mean, the projection the fine-tune's."""
    plain = tiny_model(seed=1)
    torch.manual_seed(2)
    reading = VoiceConverter(ModelConfig(**TINY, asr_content=1.0))
    torch.nn.init.normal_(reading.content_encoder.asr_in.weight)
    save_checkpoint(tmp_path / "plain.pt", plain, MelConfig())
    save_checkpoint(tmp_path / "reading.pt", reading, MelConfig())
    soup, _, _ = average_models([tmp_path / "plain.pt", tmp_path / "reading.pt"])
    assert soup.cfg.asr_content == 1.0
    for name, value in soup.state_dict().items():
        expected = (reading.state_dict()[name] if name.startswith("content_encoder.asr_in.")
                    else (plain.state_dict()[name] + reading.state_dict()[name]) / 2)
        assert torch.allclose(value, expected, atol=1e-6), name
    louder = VoiceConverter(ModelConfig(**TINY, asr_content=8.0))             # another gain: refused
    save_checkpoint(tmp_path / "louder.pt", louder, MelConfig())
    with pytest.raises(CheckpointError, match="architecture"):
        average_models([tmp_path / "reading.pt", tmp_path / "louder.pt"])
    layered = VoiceConverter(ModelConfig(**TINY, asr_content=1.0, asr_layers=(2, 4)))  # reads two layers
    save_checkpoint(tmp_path / "layered.pt", layered, MelConfig())
    soup, _, _ = average_models([tmp_path / "plain.pt", tmp_path / "layered.pt"])
    assert soup.cfg.asr_layers == (2, 4)
    assert torch.equal(soup.content_encoder.asr_in.weight, layered.content_encoder.asr_in.weight)
    with pytest.raises(CheckpointError, match="architecture"):                    # other layers: refused
        average_models([tmp_path / "reading.pt", tmp_path / "layered.pt"])


def test_average_with_a_quantised_model_keeps_its_codebook_and_quantises(tmp_path):
    """A fine-tune that quantised the content code (vq_codes) averages with its start: the shared
    weights are the mean, the codebook the fine-tune's, and the soup's codes are made of it."""
    plain = tiny_model(seed=1)
    torch.manual_seed(2)
    quantised = VoiceConverter(ModelConfig(**TINY, vq_codes=8))
    save_checkpoint(tmp_path / "plain.pt", plain, MelConfig())
    save_checkpoint(tmp_path / "vq.pt", quantised, MelConfig())
    soup, _, _ = average_models([tmp_path / "plain.pt", tmp_path / "vq.pt"])
    assert soup.cfg.vq_codes == 8
    assert torch.equal(soup.content_encoder.vq.codebook, quantised.content_encoder.vq.codebook)
    with torch.no_grad():
        code = soup.encode(torch.randn(80, 60)).content[0].T                 # (frames, content_dim)
    assert all(any(torch.allclose(c, q) for q in soup.content_encoder.vq.codebook) for c in code)
    other = VoiceConverter(ModelConfig(**TINY, vq_codes=16))                  # another codebook: refused
    save_checkpoint(tmp_path / "other.pt", other, MelConfig())
    with pytest.raises(CheckpointError, match="architecture"):
        average_models([tmp_path / "vq.pt", tmp_path / "other.pt"])


def test_a_training_checkpoints_moving_average_is_what_runs_unless_raw_is_asked(tmp_path):
    trained, averaged = tiny_model(seed=1), tiny_model(seed=2)
    save_checkpoint(tmp_path / "run.pt", trained, MelConfig(),
                    train={"step": 4, "ema": {k: v.clone() for k, v in averaged.state_dict().items()}})
    save_checkpoint(tmp_path / "plain.pt", tiny_model(seed=3), MelConfig(), train={"step": 4})
    same = lambda model, ref: all(torch.equal(v, ref.state_dict()[k]) for k, v in model.state_dict().items())  # noqa: E731
    assert same(load_model(tmp_path / "run.pt")[0], averaged)
    assert same(load_model(tmp_path / "run.pt", ema=False)[0], trained)
    soup, _, _ = average_models([tmp_path / "run.pt", tmp_path / "plain.pt"])
    name = next(k for k, v in averaged.state_dict().items() if v.is_floating_point())
    expected = (averaged.state_dict()[name] + tiny_model(seed=3).state_dict()[name]) / 2
    assert torch.allclose(soup.state_dict()[name], expected, atol=1e-6)
    export_checkpoint([tmp_path / "run.pt", tmp_path / "plain.pt"], tmp_path / "soup.pt")
    assert read_checkpoint(tmp_path / "soup.pt")["meta"]["weights"] == "moving average in 1 of 2 inputs"


def test_an_average_of_averages_carries_its_steps_and_counts_a_repeated_input_once(tmp_path):
    save_checkpoint(tmp_path / "a.pt", tiny_model(seed=1), MelConfig(), meta={"wall_seconds": 10.0, "step": 3})
    save_checkpoint(tmp_path / "b.pt", tiny_model(seed=2), MelConfig(), meta={"wall_seconds": 20.0, "step": 5})
    save_checkpoint(tmp_path / "c.pt", tiny_model(seed=3), MelConfig(), train={"step": 4}, meta={"wall_seconds": 5.0})
    export_checkpoint([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ab.pt")
    export_checkpoint([tmp_path / "ab.pt", tmp_path / "ab.pt", tmp_path / "c.pt"], tmp_path / "abc.pt")
    meta = read_checkpoint(tmp_path / "abc.pt")["meta"]
    assert meta["steps"] == [8, 8, 4] and meta["wall_seconds"] == 35.0
