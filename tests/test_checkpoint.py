"""vc.checkpoint: one file, bit-identical round trip, clear refusals."""
import pytest
import torch

from vc.checkpoint import CheckpointError, export_checkpoint, load_model, read_checkpoint, save_checkpoint
from vc.features import MelConfig
from conftest import tiny_model


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
