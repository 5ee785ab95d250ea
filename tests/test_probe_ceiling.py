"""scripts/probe_ceiling.py: each mix takes from the real and the reconstructed mel what its name says."""
import torch
from conftest import load_script


def test_mixes_take_what_they_say():
    probe = load_script("probe_ceiling")
    g = torch.Generator().manual_seed(0)
    M, R = torch.randn(80, 50, generator=g), torch.randn(80, 50, generator=g) + 1.0
    m = probe.mixes(M, R)
    assert all(x.shape == M.shape for x in m.values())
    assert torch.equal(m["real (vocoder resynthesis)"], M) and torch.equal(m["reconstruction"], R)
    swapped = m["real with the reconstruction's per-band means"]
    assert torch.allclose(swapped.mean(1), R.mean(1), atol=1e-5)                     # R's timbre ...
    assert torch.allclose(swapped - swapped.mean(1, keepdim=True), M - M.mean(1, keepdim=True), atol=1e-5)  # ... M's detail
    contour = m["reconstruction with the real energy contour"]
    assert torch.allclose(contour.mean(0), M.mean(0), atol=1e-5)
    high = m["real, bands 50-79 from the reconstruction"]
    assert torch.equal(high[:50], M[:50]) and torch.equal(high[50:], R[50:])
    # blurring keeps a constant and smooths along its own axis only
    assert torch.allclose(probe.blur(torch.ones(80, 50), 5, 1), torch.ones(80, 50))
    t = m["real blurred in time (5 frames, 58 ms)"]
    assert t.diff(dim=1).abs().mean() < M.diff(dim=1).abs().mean() / 2
    assert torch.allclose(t[:, 20], M[:, 18:23].mean(1), atol=1e-5)


def test_table_pairs_each_mix_with_the_reconstruction_and_the_real():
    probe = load_script("probe_ceiling")
    values = {"real (vocoder resynthesis)": [0.6, 0.7, 0.8], "reconstruction": [0.3, 0.4, 0.5],
              "a mix": [0.5, 0.6, 0.7]}
    rows = probe.table(values, 3).splitlines()
    assert len(rows) == 2 + len(values)
    mix = rows[-1].split(" | ")
    assert mix[1] == "0.600" and mix[2].startswith("+0.200") and mix[3].startswith("-0.100")


def test_band_mixes_take_each_range_from_where_they_say():
    probe = load_script("probe_ceiling")
    g = torch.Generator().manual_seed(1)
    M, R = torch.randn(80, 30, generator=g), torch.randn(80, 30, generator=g)
    m = probe.mixes(M, R)
    mid = m["reconstruction, bands 20-49 from the real"]
    assert torch.equal(mid[:20], R[:20]) and torch.equal(mid[20:50], M[20:50]) and torch.equal(mid[50:], R[50:])
    assert torch.equal(m["reconstruction, bands 0-19 from the real"][:20], M[:20])
    assert torch.equal(m["reconstruction, bands 50-79 from the real"][50:], M[50:])
