"""scripts/probe_match_bands.py: the reshaped envelope shift is vc.match's when unchanged, and each
change acts where its name says."""
import torch
from conftest import load_script

from vc import match


def test_reshaped_shift_does_what_it_says():
    probe = load_script("probe_match_bands")
    g = torch.Generator().manual_seed(0)
    mel, bank = torch.randn(80, 40, generator=g) - 5, torch.randn(80, 60, generator=g) - 4
    plain = probe.reshaped(0, 10, match.ENVELOPE_COEFFS, False)
    assert torch.allclose(plain(mel, bank, 0.25), match.match_envelope(mel, bank, 0.25))
    assert torch.equal(plain(mel, bank, 0.0), mel)
    high = probe.reshaped(30, 10, match.ENVELOPE_COEFFS, False)(mel, bank, 0.25)
    assert torch.equal(high[:20], mel[:20])                                    # below the ramp: untouched
    assert torch.allclose(high[30:], plain(mel, bank, 0.25)[30:])              # from the band: the full shift
    coarse = probe.reshaped(0, 10, 8, False)(mel, bank, 0.25) - mel             # 8 coefficients: a smoother shift
    d = match.dct_matrix(80)
    assert (d[8:] @ coarse).abs().max() < 1e-4 < (d[8:] @ (plain(mel, bank, 0.25) - mel)).abs().max()
    # mean-removed neighbours: a level the query has and the bank lacks no longer decides them
    cmn = probe.reshaped(0, 10, match.ENVELOPE_COEFFS, True)
    shift = cmn(mel, bank, 1.0) - mel
    assert torch.allclose(cmn(mel + 2.0, bank, 1.0) - (mel + 2.0), shift - 2.0, atol=1e-4)
