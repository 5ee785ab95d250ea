"""vc.train_config: the learning-rate schedule, and YAML configs that say only known keys."""
import pytest

from vc.train_config import DEFAULT_CONFIG, TrainConfig, learning_rate


def test_warm_up_then_cosine_to_the_final_fraction():
    cfg = TrainConfig(lr=1e-3, lr_warmup=10, lr_final=0.1, steps=110)
    warm = [learning_rate(cfg, s) for s in range(10)]
    assert warm == sorted(warm) and warm[0] == pytest.approx(1e-4) and warm[-1] == pytest.approx(1e-3)
    decay = [learning_rate(cfg, s) for s in range(10, 111)]
    assert decay[0] == pytest.approx(1e-3) and decay[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert learning_rate(cfg, 60) == pytest.approx(1e-4 + 0.9e-3 * 0.5)      # half way: the mean
    assert learning_rate(cfg, 500) == pytest.approx(1e-4)                     # past the end: stays


def test_yaml_with_an_unknown_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 10\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="unknown config keys \\['learning_rat'\\]"):
        TrainConfig.from_yaml(bad)
    assert TrainConfig.from_yaml(DEFAULT_CONFIG).steps > 0


def test_an_unknown_output_for_the_word_or_consonant_loss_is_refused():
    TrainConfig(asr_words=1.0, asr_words_on="both", obstruent_on="swap").check()
    with pytest.raises(ValueError, match="asr_words_on: 'swap', 'recon' or 'both', not 'decoder'"):
        TrainConfig(asr_words=1.0, asr_words_on="decoder").check()
    with pytest.raises(ValueError, match="obstruent_on: 'swap', 'recon' or 'both', not 'swapped'"):
        TrainConfig(obstruent_on="swapped").check()


def test_a_negative_lossy_band_is_refused():
    TrainConfig(lossy_band=40).check()
    with pytest.raises(ValueError, match="lossy_band: a mel band \\(0: off\\), not -1"):
        TrainConfig(lossy_band=-1).check()
