"""vc.quantize: the vector-quantised content code and the k-means that starts its codebook."""
import pytest
import torch

from vc.model import ModelConfig, VoiceConverter
from vc.quantize import VectorQuantizer, kmeans, perplexity
from conftest import TINY


def test_kmeans_finds_separated_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    frames = torch.cat([c + 0.1 * torch.randn(50, 2) for c in centres])
    found = kmeans(frames, 3)
    for c in centres:       # each true centre has a centroid within the noise
        assert (found - c).norm(dim=1).min() < 0.1
    with pytest.raises(ValueError, match="at least 4 frames"):
        kmeans(frames[:3], 4)


def test_each_frame_takes_its_nearest_code_and_gradients_pass_straight_through():
    vq = VectorQuantizer(codes=4, dim=3)
    vq.start(torch.eye(4, 3) * 2)                                   # codes on the axes, and the origin
    z = torch.tensor([[[1.8, 0.1, -0.2, 0.0], [0.1, 2.2, 0.0, 0.0], [0.0, 0.0, 1.5, 0.1]]],
                     requires_grad=True)                            # (B=1, D=3, T=4)
    vq.train()
    q, loss = vq(z)
    assert torch.allclose(q.detach()[0].T, vq.codebook[[0, 1, 2, 3]])
    assert loss > 0
    (q * torch.arange(12.0).view(1, 3, 4)).sum().backward()
    assert torch.equal(z.grad, torch.arange(12.0).view(1, 3, 4))   # the identity for the encoder
    z.grad = None
    vq(z)[1].backward()                                             # the commitment pulls the frames
    assert z.grad.abs().sum() > 0
    vq.eval()
    assert vq(z)[1] == 0


def test_codes_follow_their_frames_and_a_code_no_frame_takes_restarts_at_a_frame():
    vq = VectorQuantizer(codes=3, dim=2, decay=0.5, dead=0.1)
    vq.start(torch.tensor([[0.0, 0.0], [4.0, 0.0], [50.0, 50.0]]))
    frames = torch.tensor([[[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0]]])   # (B=1, D=2, T=4)
    vq.update(frames)
    assert torch.allclose(vq.codebook[0], torch.tensor([(0.5 * 0 + 0.5 * 2 * 1.0) / (0.5 + 0.5 * 2), 0.0]))
    assert vq.codebook[0, 0] > 0 and vq.codebook[1, 0] < 4.0       # each moved toward its own frames
    for _ in range(4):                                              # code 2 takes none: its count halves
        vq.update(frames)
    far = vq.codebook[2]
    assert any(torch.allclose(far, f) for f in frames[0].T)         # ... and it restarted at a frame


def test_perplexity_counts_the_codes_in_use():
    assert perplexity(torch.arange(8), 8) == pytest.approx(8)
    assert perplexity(torch.zeros(10, dtype=torch.long), 8) == pytest.approx(1)
    assert perplexity(torch.tensor([0, 0, 1, 1]), 8) == pytest.approx(2)


def test_a_quantised_models_codes_are_made_of_its_codebook_and_a_negative_size_is_refused():
    model = VoiceConverter(ModelConfig(**TINY, vq_codes=8)).eval()
    with torch.no_grad():
        code = model.encode(torch.randn(80, 60)).content[0]                # (content_dim, frames)
        out = model.convert(torch.randn(80, 60), torch.randn(80, 40))
    book = model.content_encoder.vq.codebook
    assert torch.allclose(code.T, book[model.content_encoder.vq.nearest(code[None])[0]])
    assert out.shape == (80, 60) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="vq_codes: a number of codes"):
        ModelConfig(vq_codes=-1)
