"""vc.losses: the objectives on small hand-made tensors."""
import math

import pytest
import torch

from vc import losses


def test_speaker_contrast_rewards_one_vector_per_speaker():
    torch.manual_seed(0)
    voices = torch.randn(4, 16) * 5                        # 4 speakers, far apart
    agreeing = voices.repeat_interleave(2, 0) + 0.01 * torch.randn(8, 16)
    mixed = agreeing[torch.tensor([0, 2, 1, 3, 4, 6, 5, 7])]   # pairs of two different speakers
    low, high = losses.speaker_contrast(agreeing, 2), losses.speaker_contrast(mixed, 2)
    assert low < 0.1 < high
    # all vectors alike: every centroid is as near as the own one, cross-entropy log(n_speakers)
    same = losses.speaker_contrast(torch.ones(8, 16) + 1e-4 * torch.randn(8, 16), 2)
    assert same.item() == pytest.approx(math.log(4), abs=1e-2)


def test_speaker_contrast_leaves_each_vector_out_of_its_own_centroid_and_trains_it():
    """With the vector itself in its centroid a speaker of one odd item would still look right;
    left out, three items of a speaker must agree with each other."""
    torch.manual_seed(1)
    v = torch.randn(6, 8, requires_grad=True)             # 2 speakers x 3 items
    loss = losses.speaker_contrast(v, 3)
    loss.backward()
    assert v.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = losses.speaker_contrast(v - 0.1 * v.grad, 3)
    assert stepped < loss


def test_speaker_contrast_refuses_a_batch_not_in_groups():
    with pytest.raises(ValueError, match="per_speaker >= 2"):
        losses.speaker_contrast(torch.randn(8, 4), 1)
    with pytest.raises(ValueError, match="7 items"):
        losses.speaker_contrast(torch.randn(7, 4), 2)


def test_envelope_match_is_zero_on_real_frames_and_trains_the_envelope():
    """A bank frame matched against its own bank costs nothing; a frame off the bank's envelopes
    costs something, and one gradient step along the loss brings it closer."""
    torch.manual_seed(0)
    bank = torch.randn(1, 80, 50)
    assert losses.envelope_match(bank.clone(), bank, k=1).item() < 1e-5
    pred = (bank[:, :, :20] + torch.linspace(-1, 1, 80)[None, :, None]).requires_grad_()
    loss = losses.envelope_match(pred, bank, k=1)
    assert loss.item() > 0.1
    loss.backward()
    assert losses.envelope_match(pred.detach() - 5.0 * pred.grad, bank, k=1) < loss


def test_band_tilt_weighs_the_upper_bands_and_keeps_the_mean():
    target = torch.zeros(2, 80, 10)
    low, high = target.clone(), target.clone()
    low[:, :40] = 1.0                    # the same error, in the lower or the upper half of the bands
    high[:, 40:] = 1.0
    assert losses.reconstruction(low, target) == losses.reconstruction(high, target) == 0.5
    assert losses.reconstruction(high, target, band_tilt=3.0) > 0.5 > losses.reconstruction(low, target, band_tilt=3.0)
    flat = torch.full_like(target, 0.7)  # an error alike in every band: the weights average to 1
    assert torch.isclose(losses.reconstruction(flat, target, band_tilt=3.0), torch.tensor(0.7))


def test_reconstruction_leaves_out_the_bands_an_item_is_no_target_in():
    target = torch.zeros(2, 80, 10)
    pred = target.clone()
    pred[1, 50:] = 4.0                   # item 1 wrong in its upper bands only
    keep = torch.ones(2, 80, dtype=torch.bool)
    assert losses.reconstruction(pred, target, keep=keep) == losses.reconstruction(pred, target) > 0
    keep[1, 50:] = False                 # ... where it is no target: nothing to learn
    assert losses.reconstruction(pred, target, keep=keep) == 0
    pred[0, 50:] = 1.0                   # item 0 still counts there, alone: its band means, not halved
    assert torch.isclose(losses.reconstruction(pred, target, keep=keep), torch.tensor(30 / 80))


def test_obstruent_weighs_the_high_bands_of_fricative_frames_only():
    target = torch.zeros(1, 80, 20)
    target[:, :30, :10] = 3.0            # frames 0-9 voiced (loud low bands), 10-19 a fricative (loud high bands)
    target[:, 50:, 10:] = 3.0
    off = target.clone()
    off[:, 60:, :10] += 1.0              # an error in the vowels' high bands: not counted
    off[:, :20, 10:] += 1.0              # ... in the fricative's low bands: not counted
    assert losses.obstruent(off, target) == 0
    fric = target.clone()
    fric[:, 60:, 10:] += 1.0             # in 20 of the fricative's high bands; the weights: 1 from band 50 up
    assert torch.isclose(losses.obstruent(fric, target), torch.tensor(20 / 34.5))   # (30) + 0.1..0.9 over 41-49 (4.5)
    vowels = target[..., :10]            # no frame qualifies: 0, not NaN
    assert losses.obstruent(vowels + 1.0, vowels) == 0
    assert losses.obstruent(vowels + 1.0, vowels, centre=True) == 0


def test_centred_obstruent_forgives_the_consonants_average_colour_not_their_pattern():
    target = torch.zeros(1, 80, 20)
    target[:, :30, :10] = 3.0            # voiced frames 0-9, a fricative in frames 10-19
    target[:, 50:, 10:] = 3.0
    brighter = target.clone()
    brighter[:, 50:, 10:] += 2.0         # the same fricative, louder in every high band (another voice)
    assert losses.obstruent(brighter, target) > 1.0
    assert torch.isclose(losses.obstruent(brighter, target, centre=True), torch.tensor(0.0), atol=1e-6)
    blurred = target.clone()
    blurred[:, 50:, 10:15] += 2.0        # half the frames louder, half not: the pattern changed
    assert torch.isclose(losses.obstruent(blurred, target, centre=True), torch.tensor(30 / 34.5))  # +-1 from the mean


def test_strict_obstruent_leaves_the_partly_sonorant_frames_out():
    target = torch.zeros(1, 80, 20)
    target[:, :40, :10] = 3.0            # frames 0-9: high bands 1 nat under the low ones (half weight)
    target[:, 50:, :10] = 2.0
    target[:, 50:, 10:] = 3.0            # frames 10-19: a fricative
    off = target.clone()
    off[:, 50:, :10] += 1.0
    assert losses.obstruent(off, target) > 0
    assert losses.obstruent(off, target, strict=True) == 0
