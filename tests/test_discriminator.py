"""vc.discriminator: the critic's shapes, and the speaker-aware critic hears the voice it is given."""
import torch

from vc.discriminator import MelPatchCritic, critic_loss, feature_matching


def test_critic_scores_patches_and_returns_every_layer():
    torch.manual_seed(0)
    scores, feats = MelPatchCritic()(torch.randn(2, 80, 64) - 5)
    assert scores.shape == (2, 1, 10, 8) and len(feats) == 4


def test_speaker_aware_critic_learns_to_tell_a_voice_from_another():
    """Two 'voices' (harmonic combs of different spacing, so that every patch differs) each with
    its own vector: a few critic steps make a segment score higher with its own vector than with
    the other's."""
    torch.manual_seed(0)
    critic = MelPatchCritic(channels=8, speaker_dim=4)
    bins = torch.arange(80)[:, None].expand(80, 32)
    mel = torch.stack([torch.where(bins % 6 < 2, 0.0, -8.0), torch.where(bins % 11 < 2, 0.0, -8.0)])
    voices = torch.eye(4)[:2]
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(60):     # real: each mel with its voice; fake: each mel with the other's
        loss = critic_loss(critic(mel, voices)[0], critic(mel, voices.roll(1, 0))[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        own, other = critic(mel, voices)[0].mean((1, 2, 3)), critic(mel, voices.roll(1, 0))[0].mean((1, 2, 3))
    assert (own > other + 0.5).all()
    plain = MelPatchCritic(channels=8)
    assert plain.speaker is None and critic.speaker is not None


def test_time_stride_1_scores_every_frame():
    mel = torch.randn(2, 80, 64) - 5
    coarse, _ = MelPatchCritic()(mel)
    fine, feats = MelPatchCritic(time_stride=1)(mel)
    assert coarse.shape == (2, 1, 10, 8) and fine.shape == (2, 1, 10, 64)
    assert all(f.shape[-1] == 64 for f in feats)


def test_low_band_critic_hears_only_the_upper_bands():
    """With low_band 40 the scores cover the upper 40 bands, and changing the lower ones
    changes nothing (eval mode: spectral norm's estimate held)."""
    torch.manual_seed(0)
    critic = MelPatchCritic(low_band=40).eval()
    mel = torch.randn(2, 80, 64) - 5
    other = mel.clone()
    other[:, :40] = torch.randn(2, 40, 64) - 5
    with torch.no_grad():
        scores, _ = critic(mel)
        assert scores.shape == (2, 1, 5, 8)
        assert torch.equal(scores, critic(other)[0])
        changed = mel.clone()
        changed[:, 60:] += 1.0
        assert not torch.allclose(scores, critic(changed)[0])


def test_a_batch_without_real_examples_has_no_real_term():
    """lossy_band can leave a batch with no lossless segment: the critic's loss is then its fake
    term alone and feature matching is 0, not NaN."""
    critic = MelPatchCritic()
    fake_scores, fake_feats = critic(torch.randn(2, 80, 32))
    real_scores, real_feats = critic(torch.randn(0, 80, 32))
    assert torch.equal(critic_loss(real_scores, fake_scores), (fake_scores ** 2).mean())
    assert feature_matching(real_feats, [f[:0] for f in fake_feats]) == 0
