"""scripts/probe_inference.py: its warp, warp search and nearest-speaker mean do what they say."""
import torch
from conftest import load_script


def test_warp_search_finds_the_warp_that_made_a_spectrum():
    probe = load_script("probe_inference")
    g = torch.Generator().manual_seed(0)
    bands = torch.linspace(0, 6, 80)
    # a smooth spectral envelope with two "formants", on frames of varying loudness
    env = 2 * torch.exp(-(bands - 1.5) ** 2) + 1.5 * torch.exp(-(bands - 3.5) ** 2 / 0.5)
    src = env[:, None] - 8 + 0.5 * torch.rand(1, 60, generator=g) + 0.05 * torch.randn(80, 60, generator=g)
    assert torch.equal(probe.warp(src, 1.0), src)
    up = probe.warp(src, 1.1)
    assert up.shape == src.shape and not torch.allclose(up, src)
    assert abs(probe.best_warp(src, up) - 1.1) < 0.011          # found on the 0.01 grid
    assert abs(probe.best_warp(src, probe.warp(src, 0.9)) - 0.9) < 0.011
    assert abs(probe.best_warp(src, src) - 1.0) < 1e-9
    lts = probe.long_term_spectrum(src)
    assert lts.shape == (80,) and abs(float(lts.mean())) < 1e-5


def test_nearest_mean_averages_the_values_of_the_nearest_keys():
    probe = load_script("probe_inference")
    keys = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    values = torch.tensor([[1.0], [3.0], [10.0], [100.0]])
    assert probe.nearest_mean(torch.tensor([1.0, 0.05]), keys, values, 1).item() == 1.0
    assert probe.nearest_mean(torch.tensor([1.0, 0.05]), keys, values, 2).item() == 2.0
    assert probe.nearest_mean(torch.tensor([0.0, 2.0]), keys, values, 1).item() == 10.0
