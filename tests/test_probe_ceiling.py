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
