"""vc.augment: the content input's perturbation and the new voices of ``voice_warp``."""
import torch

from vc.augment import new_voices, perturb_speaker


def harmonic_mels(batch=8, n_mels=80, frames=20, peak=30):
    """(batch, n_mels, frames) log-mels with one bright bin at ``peak`` and a slope above it."""
    mel = torch.full((batch, n_mels, frames), -8.0)
    mel[:, peak] = 0.0
    mel[:, peak + 1:] += torch.linspace(0, 2, n_mels - peak - 1)[:, None]
    return mel


def test_new_voices_warp_segment_and_reference_alike_and_move_the_harmonics():
    torch.manual_seed(0)
    seg = harmonic_mels()
    out_seg, out_ref = new_voices(seg, seg.clone(), spread=0.2)
    assert out_seg.shape == seg.shape and torch.equal(out_seg, out_ref)   # one ratio per item
    peaks = out_seg[:, :60].mean(-1).argmax(-1)
    assert len(set(peaks.tolist())) > 3                                 # items differ: new voices
    assert ((peaks - 30).abs() <= 0.2 * 30 + 1).all()                   # within the spread
    # a squeezed item's top bins go on from its top bin, not down to the floor
    squeezed = peaks < 30
    assert squeezed.any()
    assert (out_seg[squeezed, -1] > -7).all()                         # its top was -6; the floor is -11.5


def test_new_voices_with_another_reference_use_the_same_ratio():
    torch.manual_seed(1)
    seg, ref = harmonic_mels(peak=30), harmonic_mels(peak=40)
    out_seg, out_ref = new_voices(seg, ref, spread=0.2)
    moved_seg = out_seg[:, :70].mean(-1).argmax(-1).float() / 30
    moved_ref = out_ref[:, :75].mean(-1).argmax(-1).float() / 40
    assert torch.allclose(moved_seg, moved_ref, atol=0.05)


def test_perturb_speaker_off_is_identity_and_on_changes_the_input():
    mel = harmonic_mels()
    assert torch.equal(perturb_speaker(mel, 0.0, 0.0), mel)
    assert not torch.allclose(perturb_speaker(mel, 0.15, 6.0), mel)
