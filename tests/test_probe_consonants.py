"""scripts/probe_consonants.py: in the source's fricatives the conversion takes the source's
high-band pattern and keeps its own average colour; its vowels and low bands are left alone."""
import torch
from conftest import load_script


def test_with_consonants_lays_the_source_pattern_on_the_fricatives_only():
    probe = load_script("probe_consonants")
    g = torch.Generator().manual_seed(0)
    S = torch.full((80, 40), -8.0)
    S[:30, :20] = -2.0                              # frames 0-19 voiced (loud low bands)
    S[50:, 20:] = -2.0 + torch.randn(30, 20, generator=g)   # frames 20-39 a fricative with a pattern
    C = torch.randn(80, 40, generator=g) - 5
    out = probe.with_consonants(C, S, 1.0)
    assert torch.equal(out[:, :20], C[:, :20])      # the vowels: untouched
    assert torch.equal(out[:40], C[:40])            # the low bands: untouched
    fric = out[50:, 20:]                            # full weight there: the source's pattern ...
    assert torch.allclose(fric - fric.mean(1, keepdim=True), S[50:, 20:] - S[50:, 20:].mean(1, keepdim=True), atol=1e-5)
    assert torch.allclose(fric.mean(1), C[50:, 20:].mean(1), atol=1e-5)   # ... at the conversion's level per band
    assert torch.equal(probe.with_consonants(C, S, 0.0), C)


def test_with_target_colour_shifts_the_consonants_to_the_target_mean_and_keeps_their_pattern():
    probe = load_script("probe_consonants")
    g = torch.Generator().manual_seed(0)
    S = torch.full((80, 40), -8.0)
    S[:30, :20] = -2.0                              # voiced frames 0-19, a fricative in 20-39
    S[50:, 20:] = -2.0
    C = torch.randn(80, 40, generator=g) - 5
    T = torch.full((80, 30), -8.0)                  # the target's speech: a vowel, then a brighter fricative
    T[:30, :15] = -2.0
    T[50:, 15:] = 1.0
    out = probe.with_target_colour(C, S, T, 1.0)
    assert torch.equal(out[:, :20], C[:, :20]) and torch.equal(out[:40], C[:40])   # vowels, low bands: untouched
    fric, before = out[50:, 20:], C[50:, 20:]
    assert torch.allclose(fric.mean(1), torch.full((30,), 1.0), atol=1e-5)          # the target's colour
    assert torch.allclose(fric - fric.mean(1, keepdim=True), before - before.mean(1, keepdim=True), atol=1e-5)
    assert torch.equal(probe.with_target_colour(C, S, T, 0.0), C)


def test_strict_leaves_partly_sonorant_frames_alone():
    probe = load_script("probe_consonants")
    g = torch.Generator().manual_seed(0)
    S = torch.full((80, 40), -8.0)
    S[:40, :20] = -2.0                              # frames 0-19: high bands 1 nat under the low ones
    S[50:, :20] = -3.0                              # (sonorance 0.5: half weight unless strict)
    S[50:, 20:] = -2.0                              # frames 20-39 a fricative
    C = torch.randn(80, 40, generator=g) - 5
    assert not torch.equal(probe.with_consonants(C, S, 1.0)[:, :20], C[:, :20])
    strict = probe.with_consonants(C, S, 1.0, strict=True)
    assert torch.equal(strict[:, :20], C[:, :20])
    assert not torch.equal(strict[:, 20:], C[:, 20:])
