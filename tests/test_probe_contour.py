"""scripts/probe_contour.py: the conversion takes the source's ups and downs in time, keeps its own
level and spectrum."""
import torch
from conftest import load_script


def test_with_contour_lays_the_source_contour_on_the_conversion():
    probe = load_script("probe_contour")
    g = torch.Generator().manual_seed(0)
    C, S = torch.randn(80, 60, generator=g) - 5, 2 * torch.randn(80, 60, generator=g) - 8
    out = probe.with_contour(C, S, 1.0)
    assert torch.allclose(probe.contour(out), probe.contour(S), atol=1e-5)          # the source's contour
    assert torch.allclose(out.mean(), C.mean(), atol=1e-5)                           # the conversion's level
    assert torch.allclose(out - out.mean(0), C - C.mean(0), atol=1e-5)               # ... and spectral shape per frame
    assert torch.equal(probe.with_contour(C, S, 0.0), C)
    half = probe.with_contour(C, S, 0.5)
    assert torch.allclose(probe.contour(half), (probe.contour(C) + probe.contour(S)) / 2, atol=1e-5)
