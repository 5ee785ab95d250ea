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


def test_speech_only_leaves_the_pauses_alone():
    probe = load_script("probe_contour")
    g = torch.Generator().manual_seed(0)
    C, S = torch.randn(80, 60, generator=g) - 5, 2 * torch.randn(80, 60, generator=g) - 8
    S[:, :20] = -20.0                                       # the source pauses for its first 20 frames
    out = probe.with_contour(C, S, 1.0, speech_only=True)
    assert torch.equal(out[:, :20], C[:, :20])               # the conversion's own pause
    speech = torch.arange(60) >= 20
    assert torch.allclose(probe.contour(out, speech)[:, 20:], probe.contour(S, speech)[:, 20:], atol=1e-5)
    assert torch.allclose(out[:, 20:].mean(), C[:, 20:].mean(), atol=1e-5)   # the speech keeps its level
