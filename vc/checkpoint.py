"""One checkpoint file: model weights, model config, feature config, and (optionally) training state.

Layout of the dict saved with ``torch.save`` (plain tensors, numbers, strings, lists, dicts, so
that it loads with ``torch.load(..., weights_only=True)``; nothing is ever unpickled):

    format: "vc-checkpoint", version: 1
    model_config: dict (vc.model.ModelConfig), mel_config: dict (vc.features.MelConfig)
    model: state_dict of vc.model.VoiceConverter
    train: {step, config, speakers, classifier, optimizers, rng, ...}  (absent in exported models)
    meta:  free-form facts (wall time, hardware, data) for the model card

Files are written to a temporary name and renamed, so a kill never leaves a half-written file.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from .features import MelConfig
from .files import atomic_path
from .model import ModelConfig, VoiceConverter

FORMAT, VERSION = "vc-checkpoint", 1


class CheckpointError(ValueError):
    """A file that is not a usable vc checkpoint; ``str(err)`` names the file and the problem."""


def save_checkpoint(path, model: VoiceConverter, mel_cfg: MelConfig, train: dict | None = None,
                    meta: dict | None = None) -> Path:
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, "model_config": model.cfg.to_dict(),
             "mel_config": mel_cfg.to_dict(),
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "meta": meta or {}}
    if train is not None:
        state["train"] = train
    with atomic_path(path, suffix=".tmp") as tmp:      # usual permissions; errors name ``path``
        torch.save(state, tmp)
    return path


def read_checkpoint(path, expect_mel: MelConfig | None = MelConfig()) -> dict:
    """Load and validate; raises CheckpointError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {first})") from None
    except Exception as e:  # pickle errors of files that are not torch checkpoints at all
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a vc checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vc checkpoint (no '{FORMAT}' marker)")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this vc "
                              f"understands ({VERSION}); upgrade vc")
    if expect_mel is not None and MelConfig.from_dict(state["mel_config"]) != expect_mel:
        raise CheckpointError(f"{path}: trained on other features ({state['mel_config']}) than "
                              f"this vc computes ({expect_mel.to_dict()})")
    return state


def load_model(path, device: str = "cpu") -> tuple[VoiceConverter, MelConfig, dict]:
    """-> (model in eval mode, its feature config, the raw checkpoint dict)."""
    state = read_checkpoint(path)
    model = VoiceConverter(ModelConfig.from_dict(state["model_config"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model config ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), MelConfig.from_dict(state["mel_config"]), state


def export_checkpoint(src, dst, meta: dict | None = None) -> Path:
    """Strip training state (optimisers, adversary): the small file that inference needs."""
    model, mel_cfg, state = load_model(src)
    info = dict(state.get("meta", {}))
    if "train" in state:
        info.setdefault("step", int(state["train"]["step"]))
    info.update(meta or {})
    return save_checkpoint(dst, model, mel_cfg, meta=info)
