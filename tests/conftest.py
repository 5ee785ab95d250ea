"""Shared fixtures: small synthetic audio, real example clips, and a tiny random model.

Tiny models keep the suite fast; they convert nothing meaningful, so tests check behaviour
(shapes, lengths, errors, files), never quality.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vc.checkpoint import save_checkpoint
from vc.features import MelConfig
from vc.model import ModelConfig, VoiceConverter

EXAMPLES = Path(__file__).resolve().parents[1] / "vc" / "examples"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = dict(channels=32, content_dim=4, speaker_channels=32, speaker_dim=16, classifier_channels=32)


def speechlike(seconds: float, sr: int = 16000, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a wandering pitch and syllable-rate loudness: not speech, but audio
    that passes every input check (not silent, not constant)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)) ** 2
    wav = wav * envelope + 0.01 * rng.standard_normal(t.size)
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def write_wav(path, seconds: float = 2.0, sr: int = 16000, f0: float = 120.0, seed: int = 0,
              channels: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = speechlike(seconds, sr, f0, seed)
    if channels > 1:
        wav = np.stack([wav] * channels, axis=1)
    sf.write(str(path), wav, sr)
    return path


def silent_wav(path) -> Path:
    """One second of digital silence: refused as input ("all silence")."""
    sf.write(str(path), np.zeros(22050, np.float32), 22050)
    return Path(path)


def noise_wav(path, seconds: float = 2.0, sr: int = 22050) -> Path:
    """White noise: accepted as input, but it does not sound like clean speech."""
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal(int(seconds * sr)), sr)
    return Path(path)


def event_fn(app, name: str):
    """The function behind the web page's event named ``name`` (its Python name) in the built
    gr.Blocks ``app``, to call directly."""
    fns = [f for f in app.fns.values() if getattr(f, "name", "") == name]
    assert len(fns) == 1, (name, len(fns))
    return fns[0].fn


def load_script(name: str):
    """scripts/NAME.py as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model(seed: int = 0) -> VoiceConverter:
    torch.manual_seed(seed)
    return VoiceConverter(ModelConfig(**TINY)).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny model saved as a vc checkpoint."""
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, tiny_model(), MelConfig(), meta={"note": "random weights, tests only"})
    return path


@pytest.fixture(scope="session")
def recall_checkpoints(tmp_path_factory) -> dict:
    """Two tiny models with frame attention (vc.frame_attention.FrameAttention), the same but for its gate:
    "open" (random, as training leaves it) and "shut" (zero, as it starts) -> {name: path}."""
    torch.manual_seed(0)
    model = VoiceConverter(ModelConfig(**TINY, frame_attention=True)).eval()
    folder, paths = tmp_path_factory.mktemp("recall"), {}
    for name, std in (("shut", 0.0), ("open", 0.5)):
        torch.nn.init.normal_(model.decoder.attention.gate.weight, std=std)
        paths[name] = save_checkpoint(folder / f"{name}.pt", model, MelConfig(), meta={"note": "tests only"})
    return paths


@pytest.fixture(scope="session")
def pitch_checkpoint(tmp_path_factory) -> Path:
    """A tiny model whose decoder reads the source's pitch (vc.pitch), its pitch projections made
    non-zero (as training makes them), saved as a vc checkpoint."""
    torch.manual_seed(0)
    model = VoiceConverter(ModelConfig(**TINY, pitch_channels=2)).eval()
    for layer in model.decoder.pitch_in:
        torch.nn.init.normal_(layer.weight, std=0.5)
    path = tmp_path_factory.mktemp("pitch") / "pitch.pt"
    save_checkpoint(path, model, MelConfig(), meta={"note": "random weights, tests only"})
    return path


@pytest.fixture
def wav_a(tmp_path) -> Path:
    return write_wav(tmp_path / "a.wav", 2.0, 16000, f0=110, seed=1)


@pytest.fixture
def wav_b(tmp_path) -> Path:
    return write_wav(tmp_path / "b.wav", 1.5, 44100, f0=220, seed=2, channels=2)


@pytest.fixture(scope="session")
def example_clips() -> list[Path]:
    """Real speech: the bundled example clips (dev speakers of shared/data)."""
    clips = sorted(EXAMPLES.glob("*.flac"))
    assert len(clips) >= 2, f"example clips missing from {EXAMPLES}"
    return clips


@pytest.fixture(scope="module")
def served_threads():
    """Torch threads as `vc demo` sets them (cores / concurrency), restored afterwards."""
    from vc.page import set_threads
    threads = torch.get_num_threads()
    set_threads(2)
    yield
    torch.set_num_threads(threads)
